"""Property suites: the Hypothesis profiles live in tests/conftest.py, so that every test
using Hypothesis (also outside this folder) runs under them."""
