"""Independent oracles for modelstats' counts, used by the tests.

An oracle measures a number a different way from the code under test: ``jax_macs`` counts the
multiply-accumulates in a JAX trace of the model, ``models`` names the small models both sides
build (the test process on TensorFlow, the oracle's subprocess on JAX).
"""
