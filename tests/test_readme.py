"""The README's Quick start: two commands, the first installing what the worked example draws
with, the second the test command CI runs."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("&& python examples/mobilenet_report.py")
    assert commands[1] == 'pip install -e ".[test]" && python -m pytest'


def test_quick_start_installs_what_the_example_draws_with():
    """A fresh install from the first command must have matplotlib (the plots and the HTML
    report's images) and Pillow (``--image``): its extras, read from pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")
    match = re.match(r'pip install -e "\.\[([\w,-]+)\]" && ', quick_start_commands()[0])
    assert match, "the first command installs no extra"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    installed = {re.split(r"[<>=!~\[ ]", requirement)[0].lower()
                 for extra in match[1].split(",") for requirement in extras[extra]}
    assert {"matplotlib", "pillow"} <= installed, installed


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci
