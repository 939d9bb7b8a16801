"""MACs of a Keras model read from a JAX trace: an oracle independent of modelstats' rules.

modelstats counts from layer shapes and hyper-parameters. This module instead traces what the
model actually computes, ``jax.make_jaxpr`` of ``model.stateless_call(...)``, and adds up the
multiply-accumulates of the two primitives that do them:

- ``dot_general`` (every matmul, ``einsum`` and ``Dense``):
  ``numel(out) * prod(sizes of the contracted lhs dimensions)``.
- ``conv_general_dilated``: ``batch * out_features * in_features_per_group * taps``, where
  ``taps`` multiplies, per spatial axis, the (output position, kernel tap) pairs counted:

  * ``lhs_dilation == 1`` (an ordinary convolution): every output position times every tap,
    taps on padding included, as modelstats counts a convolution
    (``prod(out_spatial) * prod(kernel) * C_in/groups * C_out``).
  * ``lhs_dilation > 1`` (how JAX lowers a transposed convolution, and the input gradient of
    a strided one): only the pairs whose tap lands on a real input element, never on a zero
    inserted by the dilation nor on padding. With "valid" padding that is exactly modelstats'
    convention for a transposed convolution, ``n_in * kernel`` per axis ("each real input
    element times each tap"); where the padding crops the output ("same"), the products for
    the cropped positions are never computed and are not counted here.

  ``in_features_per_group`` is read from the kernel (its input-feature dimension), which is
  right for ``feature_group_count`` and ``batch_group_count`` alike.

Everything else (adds, bias, softmax, activations, ``mul``) is not a MAC and is ignored.
Sub-computations are followed: ``jit``/``pjit``, ``closed_call``, ``remat``/``checkpoint``,
``custom_jvp_call`` and ``custom_vjp_call`` count their body once; ``scan`` counts its body
``length`` times; a ``cond`` whose branches all do the same MACs counts them once; the
combiner of a ``scatter`` (an Embedding's gradient) is not a MAC. Any other
``cond`` (only one branch runs, and which one is data-dependent) and ``while`` (unknown trip
count) raise :class:`UnsupportedTrace`, as does any other primitive carrying a sub-jaxpr: the
oracle never guesses.

:func:`count_macs` and :func:`macs_by_primitive` are pure functions of a jaxpr (they do not
even import JAX). :func:`forward_jaxpr` traces a model's inference call and
:func:`training_jaxpr` the gradient of a training step (``jax.make_jaxpr(jax.grad(loss))``
over the trainable variables), counted with the same functions (``--training`` on the command
line).

The Keras backend is fixed by the first ``import keras`` in a process, and the test process
runs TensorFlow, so models are traced in another process on ``KERAS_BACKEND=jax``:
:func:`macs_in_subprocess` sends :func:`trace_builders` to the test process's persistent JAX
worker (:mod:`tests.oracles.jax_worker`, started once: starting JAX and Keras costs more than
most traces). The same function runs from the command line, in a fresh process::

    python -m tests.oracles.jax_macs mha_self tests.oracles.models:gqa

Each builder is ``module:function`` returning a Keras model with fixed input shapes, or a bare
name from :data:`tests.oracles.models.BUILDERS`. Builders run inside :func:`build_abstract`, so
weights are never initialised (a whole keras.applications network traces in seconds). Both
give, per builder, ``{"macs": int, "by_primitive": {name: macs}, "calls": {name: count}}``; the
script prints that mapping as one JSON line after the marker :data:`MARKER`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, Callable

__all__ = [
    "UnsupportedTrace",
    "count_macs",
    "macs_by_primitive",
    "dot_general_macs",
    "conv_general_dilated_macs",
    "forward_jaxpr",
    "training_jaxpr",
    "build_abstract",
    "trace_builder",
    "trace_builders",
    "macs_in_subprocess",
    "MARKER",
]

MARKER = "JAX_MACS_JSON "  # prefix of the result line the script prints
DEFAULT_MODULE = "tests.oracles.models"

# Primitives whose body runs exactly once per call, and the parameter holding that body.
_CALLED_ONCE = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "remat": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
}


class UnsupportedTrace(NotImplementedError):
    """The jaxpr holds control flow whose MACs cannot be read from the trace alone."""


def _open(jaxpr: Any) -> Any:
    """The ``Jaxpr`` of a ``Jaxpr`` or ``ClosedJaxpr`` (duck-typed: no JAX import needed)."""
    if hasattr(jaxpr, "eqns"):
        return jaxpr
    inner = getattr(jaxpr, "jaxpr", None)
    if inner is not None and hasattr(inner, "eqns"):
        return inner
    raise TypeError(f"Expected a jaxpr (Jaxpr or ClosedJaxpr). Received: {type(jaxpr).__name__}")


def _is_jaxpr(value: Any) -> bool:
    return hasattr(value, "eqns") or hasattr(getattr(value, "jaxpr", None), "eqns")


def _has_subjaxpr(params: dict) -> bool:
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        if any(_is_jaxpr(item) for item in items):
            return True
    return False


def _shape(var: Any) -> tuple:
    return tuple(int(d) for d in var.aval.shape)


def dot_general_macs(lhs_shape: Sequence[int], out_shape: Sequence[int],
                     dimension_numbers: Any) -> int:
    """MACs of one ``dot_general``: each output element sums over the contracted dimensions.

    >>> dot_general_macs((3, 4), (3, 5), (((1,), (0,)), ((), ())))  # (3,4) @ (4,5)
    60
    >>> dot_general_macs((2, 3, 4), (2, 3, 5), (((2,), (1,)), ((0,), (0,))))  # batched
    120
    """
    (lhs_contracting, _), _ = dimension_numbers
    return math.prod(out_shape) * math.prod(lhs_shape[d] for d in lhs_contracting)


def _real_pairs(size: int, kernel: int, out: int, stride: int, low_pad: int,
                lhs_dilation: int, rhs_dilation: int) -> int:
    """(output position, tap) pairs on one axis whose tap reads a real input element.

    Output position ``i`` with tap ``t`` reads position ``p = i*stride + t*rhs_dilation -
    low_pad`` of the dilated input, which holds input element ``p / lhs_dilation`` when ``p``
    is a multiple of ``lhs_dilation`` inside ``[0, (size-1)*lhs_dilation]``, and a zero
    (inserted or padding) otherwise.

    >>> _real_pairs(4, 3, 9, 1, 2, 2, 1)  # transposed conv, stride 2, "valid": 4 inputs * 3
    12
    """
    last = (size - 1) * lhs_dilation
    count = 0
    for tap in range(kernel):
        for position in range(out):
            p = position * stride + tap * rhs_dilation - low_pad
            if 0 <= p <= last and p % lhs_dilation == 0:
                count += 1
    return count


def conv_general_dilated_macs(lhs_shape: Sequence[int], rhs_shape: Sequence[int],
                              out_shape: Sequence[int], params: dict) -> int:
    """MACs of one ``conv_general_dilated`` (conventions in the module docstring).

    >>> nchw = (0, 1, 2, 3)  # (lhs_spec, rhs_spec, out_spec) as in ConvDimensionNumbers
    >>> params = dict(dimension_numbers=(nchw, nchw, nchw), window_strides=(1, 1),
    ...               padding=((0, 0), (0, 0)), lhs_dilation=(1, 1), rhs_dilation=(1, 1))
    >>> conv_general_dilated_macs((1, 3, 8, 8), (4, 3, 3, 3), (1, 4, 6, 6), params)  # 144*9*3
    3888
    """
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    taps = 1
    for axis in range(len(lhs_spec) - 2):
        kernel = rhs_shape[rhs_spec[2 + axis]]
        out = out_shape[out_spec[2 + axis]]
        lhs_dilation = params["lhs_dilation"][axis]
        if lhs_dilation == 1:
            taps *= out * kernel  # every output position times every tap, padding included
        else:
            taps *= _real_pairs(
                lhs_shape[lhs_spec[2 + axis]], kernel, out, params["window_strides"][axis],
                params["padding"][axis][0], lhs_dilation, params["rhs_dilation"][axis],
            )
    batch, out_features = out_shape[out_spec[0]], out_shape[out_spec[1]]
    in_features_per_group = rhs_shape[rhs_spec[1]]  # the kernel's input-feature dimension
    return batch * out_features * in_features_per_group * taps


def _accumulate(jaxpr: Any, factor: int, macs: Counter, calls: Counter) -> None:
    for eqn in _open(jaxpr).eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            lhs = _shape(eqn.invars[0])
            out = _shape(eqn.outvars[0])
            macs[name] += factor * dot_general_macs(lhs, out, eqn.params["dimension_numbers"])
            calls[name] += factor
        elif name == "conv_general_dilated":
            lhs, rhs = _shape(eqn.invars[0]), _shape(eqn.invars[1])
            out = _shape(eqn.outvars[0])
            macs[name] += factor * conv_general_dilated_macs(lhs, rhs, out, eqn.params)
            calls[name] += factor
        elif name in _CALLED_ONCE and _CALLED_ONCE[name] in eqn.params:
            _accumulate(eqn.params[_CALLED_ONCE[name]], factor, macs, calls)
        elif name == "scan":
            _accumulate(eqn.params["jaxpr"], factor * int(eqn.params["length"]), macs, calls)
        elif name.startswith("scatter"):
            continue  # its sub-jaxpr combines each update into place (add, max, ...): no MAC
        elif name == "cond" and _same_in_every_branch(eqn.params["branches"]):
            # Whichever branch runs, it does the same MACs (e.g. none: Keras' RNN masking)
            _accumulate(eqn.params["branches"][0], factor, macs, calls)
        elif name in ("cond", "while"):
            raise UnsupportedTrace(
                f"'{name}' in the trace: its MACs depend on run-time data (which branch, how "
                "many iterations), so the oracle cannot count them from the jaxpr."
            )
        elif _has_subjaxpr(eqn.params):
            raise UnsupportedTrace(
                f"Primitive '{name}' carries a sub-jaxpr the oracle does not know how to count; "
                f"add it to _CALLED_ONCE (or handle it) in {__name__}."
            )


def _same_in_every_branch(branches: Sequence[Any]) -> bool:
    counted = [macs_by_primitive(branch) for branch in branches]
    return all(c == counted[0] for c in counted[1:])


def macs_by_primitive(jaxpr: Any) -> tuple[dict, dict]:
    """MACs and call counts per MAC primitive in a jaxpr, sub-jaxprs included.

    Parameters
    ----------
    jaxpr : jax.core.Jaxpr or jax.core.ClosedJaxpr

    Returns
    -------
    (dict, dict)
        ``{primitive: macs}`` and ``{primitive: number of calls}`` (a scan body's calls counted
        ``length`` times), for ``dot_general`` and ``conv_general_dilated``.
    """
    macs: Counter = Counter()
    calls: Counter = Counter()
    _accumulate(jaxpr, 1, macs, calls)
    return dict(macs), dict(calls)


def count_macs(jaxpr: Any) -> int:
    """Total multiply-accumulates in a jaxpr (see the module docstring for what counts)."""
    return sum(macs_by_primitive(jaxpr)[0].values())


def forward_jaxpr(model: Any, batch_size: int = 1,
                  input_specs: Sequence[tuple[Sequence[int], str]] | None = None) -> Any:
    """``jax.make_jaxpr`` of ``model``'s inference call on inputs of ``batch_size`` samples.

    Needs the JAX backend of Keras. Inputs and weights are abstract (shape and dtype only), so
    the weights need not hold values: see :func:`build_abstract`. Every input dimension but
    the batch must be known, from the model or from ``input_specs``: one ``(shape without
    batch, dtype)`` per entry of ``model.inputs``, in order. The inputs are passed in the
    model's own structure (``model.input``: a dict for keras-hub's text backbones).
    """
    import jax

    inputs = _abstract_inputs(model, batch_size, input_specs)

    def forward(trainable, non_trainable, inputs):
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
        return outputs

    return jax.make_jaxpr(forward)(
        _abstract(model.trainable_variables), _abstract(model.non_trainable_variables), inputs
    )


def _abstract(variables: Sequence[Any]) -> list:
    import jax

    return [jax.ShapeDtypeStruct(tuple(v.shape), v.dtype) for v in variables]


def _abstract_inputs(model: Any, batch_size: int,
                     input_specs: Sequence[tuple[Sequence[int], str]] | None) -> Any:
    """Abstract inputs of ``batch_size`` samples, in the model's own input structure."""
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            "The JAX oracle needs KERAS_BACKEND=jax (set before the first import of keras). "
            f"Received: the {keras.backend.backend()} backend."
        )
    if input_specs is not None and len(input_specs) != len(model.inputs):
        raise ValueError(
            f"The model has {len(model.inputs)} inputs; input_specs gives {len(input_specs)}. "
            f"Received: input_specs={input_specs}"
        )
    specs = []
    for i, tensor in enumerate(model.inputs):
        shape, dtype = tuple(tensor.shape[1:]), tensor.dtype
        if input_specs is not None:
            shape, dtype = tuple(input_specs[i][0]), input_specs[i][1]
        if any(d is None for d in shape):
            raise ValueError(
                f"Model input '{tensor.name}' has shape {shape}: the oracle needs every "
                "dimension but the batch; build the model on fixed input shapes or pass "
                "input_specs."
            )
        specs.append(jax.ShapeDtypeStruct((batch_size, *shape), dtype))
    if isinstance(model.input, dict):  # inputs by name (keras-hub's text backbones)
        by_tensor = {id(t): spec for t, spec in zip(model.inputs, specs)}
        return {key: by_tensor[id(t)] for key, t in model.input.items()}
    return specs[0] if len(specs) == 1 else specs


def training_jaxpr(model: Any, batch_size: int = 1,
                   input_specs: Sequence[tuple[Sequence[int], str]] | None = None) -> Any:
    """``jax.make_jaxpr`` of one training step's gradient: ``jax.grad`` of a loss over
    ``model.stateless_call(..., training=True)`` with respect to the trainable variables.

    The loss is the sum of the outputs (a reduction, no MACs), so the trace holds the forward
    pass in training mode and the backward pass JAX derives from it; frozen variables are
    passed as non-trainable and get no gradient, and neither does the input. Shapes and
    dtypes as in :func:`forward_jaxpr`.
    """
    import jax
    import jax.numpy as jnp

    inputs = _abstract_inputs(model, batch_size, input_specs)

    def loss(trainable, non_trainable, inputs):
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
        return sum(jnp.sum(o.astype("float32")) for o in jax.tree_util.tree_leaves(outputs))

    return jax.make_jaxpr(jax.grad(loss))(
        _abstract(model.trainable_variables), _abstract(model.non_trainable_variables), inputs
    )


def build_abstract(build: Callable[[], Any]) -> Any:
    """Call a model builder without giving its weights values.

    Inside ``keras.StatelessScope(initialize_variables=False)`` Keras defers every variable's
    initialiser and never runs it, so the weights have a shape and a dtype only, which is all
    a trace needs. Initialising them would compile one random initialiser per weight shape
    with XLA (about a second each: minutes for a real network).
    """
    import keras

    with keras.StatelessScope(initialize_variables=False):
        return build()


def resolve_builder(spec: str) -> Callable[[], Any]:
    """The builder function named by ``module:function`` or by a bare name in
    :data:`tests.oracles.models.BUILDERS`."""
    module_name, _, function = spec.rpartition(":")
    if not module_name:
        registry = importlib.import_module(DEFAULT_MODULE).BUILDERS
        if spec not in registry:
            raise KeyError(f"No builder '{spec}' in {DEFAULT_MODULE}; it has {sorted(registry)}.")
        return registry[spec]
    return getattr(importlib.import_module(module_name), function)


def trace_builder(spec: str, batch_size: int = 1, training: bool = False) -> dict:
    """Build the model named by ``spec`` and count the MACs of its forward trace (of its
    training step's gradient with ``training``).

    A builder with an ``input_specs`` attribute (``{input name: (shape, dtype)}``, see
    :mod:`tests.oracles.hub_models`) fixes the input shapes its model leaves unknown.
    """
    build = resolve_builder(spec)
    model = build_abstract(build)
    declared = getattr(build, "input_specs", None)
    specs = None
    if declared is not None:
        from tests.oracles.hub_models import input_specs

        specs = input_specs(model, declared)
    trace = training_jaxpr if training else forward_jaxpr
    macs, calls = macs_by_primitive(trace(model, batch_size, specs))
    return {"macs": sum(macs.values()), "by_primitive": macs, "calls": calls}


def trace_builders(builders: Sequence[str], batch_size: int = 1,
                   training: bool = False) -> dict:
    """:func:`trace_builder` for each builder, in this process (which must run on JAX).

    What the script and the JAX worker run: the builders are traced one after the other in
    one process, without clearing Keras' session in between.

    Returns
    -------
    dict
        ``{builder: {"macs": int, "by_primitive": {...}, "calls": {...}}}``.
    """
    return {spec: trace_builder(spec, batch_size, training) for spec in builders}


def macs_in_subprocess(builders: Sequence[str], *, batch_size: int = 1,
                       training: bool = False, timeout: float = 600) -> dict:
    """Trace every builder in ONE request to the JAX worker (JAX starts slowly).

    The worker (:mod:`tests.oracles.jax_worker`) is this process's persistent
    ``KERAS_BACKEND=jax`` subprocess; it runs :func:`trace_builders` after
    ``keras.backend.clear_session()``, so the result does not depend on earlier requests.

    Parameters
    ----------
    builders : sequence of str
        ``module:function`` or names in :data:`tests.oracles.models.BUILDERS`; each builder
        takes no argument and returns a Keras model with fixed input shapes, built with
        Keras APIs only (so it builds on any backend).
    batch_size : int, default 1
        Samples per traced call (modelstats counts per sample).
    training : bool, default False
        Trace the gradient of a training step (:func:`training_jaxpr`) instead of the
        inference call.
    timeout : float
        Seconds to wait for the traces (the worker's start included, when this request starts
        it); the worker is stopped when they run out.

    Returns
    -------
    dict
        ``{builder: {"macs": int, "by_primitive": {...}, "calls": {...}}}``.

    Raises
    ------
    RuntimeError
        When the trace fails (with the exception and its traceback), times out or the worker
        dies (with the end of its stderr): :class:`tests.oracles.jax_worker.JaxWorkerError`.
    """
    from tests.oracles import jax_worker

    return jax_worker.call("tests.oracles.jax_macs:trace_builders", builders=list(builders),
                           batch_size=batch_size, training=training, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: trace the builders given, print the result after :data:`MARKER`."""
    import argparse

    if "keras" not in sys.modules:  # the backend is chosen by the first import of keras
        os.environ["KERAS_BACKEND"] = "jax"

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builders", nargs="+", help="module:function or a name in BUILDERS")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--training", action="store_true",
                        help="trace the gradient of a training step")
    args = parser.parse_args(argv)
    results = trace_builders(args.builders, args.batch_size, args.training)
    print(MARKER + json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
