"""What differs between Keras 3 and legacy Keras 2 (``tf_keras``) graphs, in one place.

``modelstats.graph`` walks a model through an adapter: which object holds a Functional's nodes,
how a node names its operation, input tensors and outputs, how a nested model's call arguments
are read, and how a model is rebuilt for new input shapes. The rules never see the difference:
a ``tf_keras`` layer class is resolved to the Keras 3 class of the same name (``Conv2D`` ->
``keras.layers.Conv2D``), and Keras 2's ``TFOpLambda`` wrappers of raw TensorFlow functions are
costed by the rule of the matching ``keras.ops`` operation (``tf.math.truediv`` ->
``TrueDivide``). Keras 3 on any backend (TensorFlow, JAX, PyTorch) needs no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
import weakref
from typing import Any, Optional

from modelstats.errors import NotAGraphModelError

__all__ = ["adapter_for", "adapter_for_call", "Keras3Adapter", "TfKerasAdapter"]


class Keras3Adapter:
    """Keras 3 (``keras``), any backend."""

    name = "keras"

    def __init__(self) -> None:
        import keras

        self.keras = keras
        # (what a layer's shape inference is unless its class overrides it: _output_shape_spec)
        self._layer_output_spec = keras.layers.Layer.compute_output_spec

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.layers.Layer)

    # -- models -----------------------------------------------------------------------------
    def is_sequential(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.Sequential)

    def is_model(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.Model)

    def sequential_graph(self, model: Any) -> Optional[Any]:
        """The Functional describing a built Sequential (None while it is not built)."""
        return getattr(model, "_functional", None)

    def built_clone(self, model: Any, input_shape: Any) -> Optional[Any]:
        clone = self.keras.models.clone_model(model)
        clone.build((None, *tuple(input_shape)))
        return self.sequential_graph(clone)

    def with_input_shapes(self, model: Any, shapes: list) -> Optional[Any]:
        """Keras 3 re-infers shapes on the graph itself (``graph._reinfer_shapes``)."""
        return None

    # -- graphs -----------------------------------------------------------------------------
    @staticmethod
    def nodes_in_topological_order(functional: Any) -> list:
        """Keras nodes of one Functional, inputs first.

        Keras stores the depth of each node when the model is constructed; deeper nodes come
        first in the graph (depth 0 is the output), so decreasing depth is a topological order.
        """
        by_depth = functional._nodes_by_depth
        return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]

    def closes_over_tensors(self, functional: Any) -> Optional[str]:
        """The name of the first operation of a traced call whose Python functions close over
        symbolic tensors of that call (``ops.cond(p, lambda: ops.matmul(x, w), ...)``), else
        None. Such an operation cannot be replayed alone on other tensors: its functions would
        still read the call's symbolic ones."""
        keras = self.keras

        def captured(function: Any) -> bool:
            cells = getattr(function, "__closure__", None) or ()
            for cell in cells:
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if any(isinstance(v, keras.KerasTensor) for v in keras.tree.flatten(value)):
                    return True
            return False

        for node in self.nodes_in_topological_order(functional):
            operation = node.operation
            functions = [v for v in (*node.arguments.args, *node.arguments.kwargs.values(),
                                     *vars(operation).values()) if callable(v)
                         and getattr(v, "__closure__", None)]
            if any(captured(f) for f in functions):
                return operation.name
        return None

    @staticmethod
    def input_structure(functional: Any) -> Any:
        """How a Functional's call takes its inputs (a dict when called with named inputs)."""
        return getattr(functional, "_inputs_struct", None)

    @staticmethod
    def tensor_name(tensor: Any) -> str:
        return tensor.name.split(":")[0]

    @staticmethod
    def producer_name(tensor: Any) -> str:
        """Name of the operation that produced ``tensor`` (a model input's InputLayer)."""
        return tensor._keras_history.operation.name

    # -- nodes ------------------------------------------------------------------------------
    @staticmethod
    def operation(node: Any) -> Any:
        return node.operation

    @staticmethod
    def is_input(node: Any) -> bool:
        return bool(node.is_input)

    @staticmethod
    def input_tensors(node: Any) -> list:
        return list(node.arguments.keras_tensors)

    def outputs(self, node_or_model_outputs: Any) -> list:
        return list(self.keras.tree.flatten(node_or_model_outputs))

    @staticmethod
    def node_outputs(node: Any) -> list:
        """The output tensors of one call, in order."""
        # A Keras 3 node flattens its outputs when it is made (and checks each is a tensor);
        # flattening them again at every read is most of what reading them costs.
        return list(node.outputs)

    def call_arguments(self, node: Any) -> tuple:
        return tuple(node.arguments.args)

    def flat_tensors(self, structure: Any) -> list:
        return [t for t in self.keras.tree.flatten(structure)
                if isinstance(t, self.keras.KerasTensor)]

    def is_symbolic(self, value: Any) -> bool:
        return isinstance(value, self.keras.KerasTensor)

    @staticmethod
    def dtype(tensor: Any) -> str:
        return str(tensor.dtype)

    @staticmethod
    def data_format(operation: Any) -> Optional[str]:
        """``channels_last`` / ``channels_first`` for operations that have one, else None."""
        value = getattr(operation, "data_format", None)
        return value if value in ("channels_last", "channels_first") else None

    @staticmethod
    def variable_size(variable: Any) -> int:
        # Keras 3 variables keep their shape as a plain tuple; ``.shape`` would build a
        # backend TensorShape per weight (most of the graph walk's time on large models).
        shape = getattr(variable, "_shape", None) or variable.shape
        return math.prod(int(d) for d in shape)

    @classmethod
    def weight_sizes(cls, variables: list) -> list[tuple[int, str]]:
        """``(elements, stored dtype)`` of each variable: :meth:`variable_size` and
        :meth:`variable_dtype` of each, in one call per layer."""
        sizes = []
        for variable in variables:
            # Keras 3 keeps the shape as a tuple of Python ints and the dtype's standardised
            # name: read directly, without two method calls per variable
            shape, dtype = getattr(variable, "_shape", None), getattr(variable, "_dtype", None)
            if type(shape) is tuple and isinstance(dtype, str):
                sizes.append((math.prod(shape), dtype))
            else:
                sizes.append((cls.variable_size(variable), cls.variable_dtype(variable)))
        return sizes

    @staticmethod
    def training_argument(node: Any) -> Optional[bool]:
        """The ``training=`` a call was made with (``base(x, training=False)`` keeps a
        fine-tuned base's batch norms in inference mode), None when not given."""
        arguments = getattr(node, "arguments", None)
        value = getattr(arguments, "kwargs", {}).get("training")
        return value if isinstance(value, bool) else None

    @staticmethod
    def variable_dtype(variable: Any) -> str:
        """The dtype a variable is stored in, read outside any call: float32 for the kernels of
        a ``mixed_float16`` layer, which its calls cast to float16."""
        # Keras 3 keeps the standardised name; ``.dtype`` standardises it again at each read
        # (and may answer the autocast dtype inside a call).
        dtype = getattr(variable, "_dtype", None)
        if isinstance(dtype, str):
            return dtype
        dtype = variable.dtype
        return getattr(dtype, "name", str(dtype))  # tf_keras variables hold a tf.DType

    @staticmethod
    def layer_weights(layer: Any) -> tuple[list, list]:
        """``(trainable, non_trainable)`` weights of a layer, as Keras'
        ``trainable_weights`` and ``non_trainable_weights`` give them, from one read of
        ``weights`` (each property walks every sublayer again)."""
        weights = layer.weights
        if not weights:  # (most layers own none: no flag to read)
            return [], []
        if not layer.trainable:
            return [], list(weights)
        trainable, frozen = [], []
        for variable in weights:  # one read of each variable's flag (a property)
            (trainable if variable.trainable else frozen).append(variable)
        return trainable, frozen

    def argument_variables(self, node: Any) -> list:
        """Variables passed to an operation's call as arguments (``ops.matmul(x, self.w)``
        inside a traced layer): the weights an operation that owns none reads."""
        arguments = (node.arguments.args, node.arguments.kwargs)
        return [v for v in self.keras.tree.flatten(arguments) if isinstance(v, self.keras.Variable)]

    def run_output_spec(self, node: Any, input_shapes: list, dtypes: list) -> list:
        """Output tensors of ``node``'s operation found by running its ``call`` on backend
        symbolic tensors of ``input_shapes`` (batch 1). For a layer whose own shape
        inference is frozen at build time (EinsumDense's ``full_output_shape``, built on a
        ``None`` sequence length) and so leaves sizes unknown that its inputs determine."""
        from keras.src.backend import compute_output_spec

        keras = self.keras
        tensors = {id(t): keras.KerasTensor((1, *shape), dtype=dtype)
                   for t, shape, dtype in zip(node.arguments.keras_tensors, input_shapes, dtypes)}
        args, kwargs = node.arguments.fill_in(tensors)
        call = node.operation.call
        return keras.tree.flatten(compute_output_spec(call, *args, **_accepted(call, kwargs)))

    # -- backend traces (modelstats.backend_trace) -------------------------------------------
    def backend_name(self) -> str:
        """The Keras backend in use: ``tensorflow``, ``jax``, ``torch`` or ``numpy``."""
        return self.keras.backend.backend()

    def backend_function(self, node: Any) -> tuple:
        """``(run, input dtypes, variable specs)`` for a backend trace of one call.

        ``run(inputs, values)`` calls ``node``'s operation on backend tensors ``inputs`` (one
        per input tensor of the node, in order; their dtypes are the second item), with its
        other arguments as recorded, and returns the flat list of its outputs. Inside,
        every variable of the operation reads as the matching tensor of ``values`` (shapes and
        dtypes in the third item, ``(shape, dtype)`` each), through ``keras.StatelessScope``:
        no weight is read or initialised (a model built without weight values traces too), and
        a trace of ``run`` sees the weights as inputs.
        """
        keras = self.keras
        operation = node.operation
        tensors = list(node.arguments.keras_tensors)
        variables = list(getattr(operation, "variables", None) or self.argument_variables(node))
        call = operation.call

        def run(inputs: list, values: list) -> list:
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                args, kwargs = node.arguments.fill_in(
                    {id(t): x for t, x in zip(tensors, inputs)})
                return keras.tree.flatten(call(*args, **_accepted(call, kwargs)))

        specs = [(tuple(v.shape), self.variable_dtype(v)) for v in variables]
        return run, [str(t.dtype) for t in tensors], specs

    # -- tracing ----------------------------------------------------------------------------
    def trace_call(self, node: Any, like: Optional[list] = None, keep_leading: bool = False,
                   traceable: Optional[Any] = None, pretraced: Optional[dict] = None) -> Any:
        """What one call of a layer does inside (a :class:`TracedCall`, read as a Functional
        is): its ``call`` run on fresh symbolic inputs of the node's shapes (or of the tensors
        ``like``) records every sublayer call and ``keras.ops`` call as Keras nodes. Raises
        whatever the call raises on symbolic tensors, and :class:`ConstantOutputs` when it
        returns no symbolic tensor.

        The model's batch axis becomes 1, not None: layers written for real tensors compute
        with the batch size (``ops.reshape(x, [ops.shape(x)[0], -1, c])``), which a None
        cannot do, and costs are per sample. ``keep_leading``: the call sits inside a traced
        call, where the leading axis is already relative to one sample and may hold several
        (Swin's window attention gets windows x batch); it stays.

        ``traceable(layer)`` says which sublayers will be traced in turn. While this call
        runs, their calls are traced already (that is how their outputs are inferred, in
        place of Keras' own inference, which for a layer without ``compute_output_shape``
        runs its call on backend tensors: the same work, done twice). Their Functionals go
        into ``pretraced``, and a later ``trace_call`` of their node takes its own from there.
        """
        keras = self.keras
        tensors = list(node.arguments.keras_tensors)
        shapes = [((t.shape[0] or 1) if keep_leading else 1, *t.shape[1:])
                  for t in (like or tensors)]
        outputs = keras.tree.flatten(node.outputs)
        if pretraced and outputs:
            known, functional = pretraced.pop(id(outputs[0]), (None, None))
            if known is outputs[0] and [tuple(t.shape) for t in functional.inputs] == shapes:
                return functional
        dtypes = [t.dtype for t in (like or tensors)]
        return self._trace(node.operation, tensors, shapes, dtypes, node.arguments.fill_in,
                           _Pretrace(self, traceable, pretraced))[0]

    def _trace(self, operation: Any, tensors: list, shapes: list, dtypes: list,
               fill_in: Any, pretrace: "_Pretrace", outermost: bool = True) -> Any:
        """Run ``operation.call`` on new symbolic inputs (``tensors`` replaced through
        ``fill_in``): the :class:`TracedCall` of what it did, and its outputs as returned."""
        keras = self.keras
        inputs = [keras.Input(batch_shape=shape, dtype=dtype)
                  for shape, dtype in zip(shapes, dtypes)]
        args, kwargs = fill_in({id(t): new for t, new in zip(tensors, inputs)})
        if outermost:
            with _complete_sublayer_specs(operation, keras, pretrace):
                outputs = operation.call(*args, **kwargs)
        else:  # inside a traced call: the sublayers' inference is set up already
            outputs = operation.call(*args, **kwargs)
        flat = keras.tree.flatten(outputs)
        if flat and not any(isinstance(t, keras.KerasTensor) for t in flat):
            raise ConstantOutputs(
                "its outputs are computed from its weights and its inputs' shapes only (a "
                f"{type(flat[0]).__name__} of shape {tuple(flat[0].shape)}, not a symbolic "
                "tensor)")
        return TracedCall(operation.name, inputs, flat), outputs

    def trace_model(self, model: Any, shapes: Optional[list]) -> Any:
        """The Functional of a subclassed model: its ``call`` on symbolic inputs of ``shapes``
        (without batch), or of the shapes it was built with."""
        keras = self.keras
        if shapes is None:
            built = getattr(model, "_build_shapes_dict", None) or {}
            shapes = [tuple(s)[1:] for s in built.values()
                      if isinstance(s, (tuple, list)) and all(_is_dim(d) for d in s)]
            if not shapes:
                return None
        names = _call_parameters(model.call)[:1] if len(shapes) == 1 else []
        names = names or [f"input_{i}" for i in range(len(shapes))]
        inputs = [keras.Input(batch_shape=(1, *shape), name=name)  # batch 1: see trace_call
                  for shape, name in zip(shapes, names)]
        outputs = model.call(inputs[0] if len(inputs) == 1 else inputs)
        return keras.Model(inputs, outputs, name=model.name)

    # -- shape inference ----------------------------------------------------------------------
    def symbolic_input(self, shape: tuple, dtype: Any) -> Any:
        """A symbolic batch of inputs of ``shape`` (without batch)."""
        return self.keras.KerasTensor((None, *shape), dtype=dtype)

    def infer_outputs(self, node: Any, inputs: list) -> list:
        """Output tensors of ``node``'s operation called on new symbolic ``inputs`` (one per
        input tensor of the node, in order), by Keras' own shape inference."""
        tensors = {id(t): new for t, new in zip(node.arguments.keras_tensors, inputs)}
        args, kwargs = node.arguments.fill_in(tensors)
        operation = node.operation
        # (Keras' shapes come from the tensor arguments only: a keyword such as training=False
        # changes none. A structure among them might hold tensors: Keras then answers.)
        if len(args) == 1 and all(isinstance(v, _PLAIN_VALUES) for v in kwargs.values()):
            spec = self._output_shape_spec(operation, args[0])
            if spec is not None:
                return [spec]
        infer = operation.compute_output_spec
        # Layer.__call__ takes call-context arguments (training, mask) out before it asks
        # for the output spec; an override without them (Identity's) would refuse them.
        kwargs = _accepted(infer, kwargs)
        return self.keras.tree.flatten(infer(*args, **kwargs))

    def _output_shape_spec(self, layer: Any, tensor: Any) -> Optional[Any]:
        """What Keras' ``Layer.compute_output_spec`` gives for a call on one tensor (its
        other arguments plain values), of a layer whose own ``compute_output_shape`` takes
        one shape: that method's answer as a symbolic tensor of the layer's compute dtype.
        Keras reaches it through a call spec, a dict of shapes by argument name and a
        signature read per call, several times the work of the answer. None where Keras
        would do more than that (its method overridden, on the class or the instance; no
        ``compute_output_shape``; one of several shapes; a nested or empty output): Keras
        then answers itself."""
        keras = self.keras
        compute_output_shape = getattr(layer, "compute_output_shape", None)
        if self._layer_output_spec is None \
                or getattr(getattr(layer, "compute_output_spec", None), "__func__", None) \
                is not self._layer_output_spec \
                or not isinstance(tensor, keras.KerasTensor) \
                or compute_output_shape is None \
                or getattr(compute_output_shape, "_is_default", False):
            return None
        shape_parameters, call_parameters = (_parameters(compute_output_shape),
                                             _parameters(layer.call))
        if shape_parameters is None or len(_named(shape_parameters)) != 1 \
                or not call_parameters \
                or call_parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD) \
                or call_parameters[0].name == "mask":
            # (Keras passes the shape of a named argument other than ``mask``: a call taking
            # ``*args``, or its tensor as ``mask``, gets None or another shape)
            return None
        shape = compute_output_shape(tensor.shape)
        if isinstance(shape, list) and shape and isinstance(shape[0], (int, type(None))):
            shape = tuple(shape)
        if not (isinstance(shape, tuple) and shape
                and all(isinstance(d, (int, type(None))) for d in shape)):
            return None
        return keras.KerasTensor(shape, dtype=layer.compute_dtype)

    # -- running ------------------------------------------------------------------------------
    def call_node(self, node: Any, inputs: list, training: Optional[bool] = False) -> list:
        """Run one call of an operation on concrete tensors and return its flat outputs.

        ``inputs`` replace the node's input tensors (one per tensor of :meth:`input_tensors`,
        in order); the other call arguments are the recorded ones. ``training`` goes to every
        operation whose ``call`` takes it, so augmentation, dropout and batch normalisation run
        as at inference (an augmentation layer defaults to ``training=True``). Eager calls
        record no Keras node: the model is left as it was.
        """
        tensors = {id(t): value for t, value in zip(node.arguments.keras_tensors, inputs)}
        args, kwargs = node.arguments.fill_in(tensors)
        operation = node.operation
        if training is not None and _takes(operation.call, "training"):
            kwargs["training"] = training
        return self.keras.tree.flatten(operation(*args, **kwargs))


def run_calls(adapter: Any, steps: Any, values: dict) -> dict:
    """Run graph nodes ``steps`` (``(node id, data)`` of a :func:`modelstats.to_networkx`
    graph, in graph order) one call at a time on concrete tensors, in inference mode.
    ``values`` maps ``(node id, output index)`` to a tensor: it holds every input the steps
    read, and gets every output. The input of a nested or traced call passes its input on."""
    for node_id, data in steps:
        inputs = [values[source] for source in data["inputs"]]
        if adapter.is_input(data["keras_node"]):
            outputs = inputs[:1]
        else:
            outputs = adapter.call_node(data["keras_node"], inputs, training=False)
        for position, value in enumerate(outputs):
            values[(node_id, position)] = value
    return values


def _takes(function: Any, name: str) -> bool:
    """Whether ``function`` takes a parameter ``name`` (or any keyword)."""
    return any(p.name == name or p.kind is p.VAR_KEYWORD
               for p in _parameters(function) or ())


class ConstantOutputs(Exception):
    """A traced call returned values, not symbolic tensors: its outputs are computed from its
    weights and the shapes of its inputs only (keras-hub's ``PositionEmbedding`` slices its
    table to the sequence length). What it computed from the weights ran eagerly, unseen, so
    its work is read from its backend trace instead (a product of two weights is work at every
    call, where a compiler folds one of constants)."""


class TracedCall:
    """The Keras nodes one traced call recorded between its symbolic inputs and outputs: what
    the walk reads of a Functional (``name``, ``inputs``, ``outputs``, ``_nodes_by_depth``),
    without building a ``keras.Model`` around them. (A Model's construction, a Layer with its
    attribute tracking and a check run through the graph, cost more than the trace itself.)"""

    def __init__(self, name: str, inputs: list, outputs: list) -> None:
        from keras.src.backend import KerasTensor
        from keras.src.ops.function import map_graph

        self.name = name
        self.inputs = inputs
        # A None output is no output (Keras leaves it out of a call's node: see
        # _complete_sublayer_specs); a constant one, computed from weights or shapes alone, is
        # kept in place but has no node (the walk checks nothing reads it).
        self.outputs = [t for t in outputs if t is not None]
        self._nodes_by_depth = map_graph(
            inputs, [t for t in self.outputs if isinstance(t, KerasTensor)])[1]


class _Pretrace:
    """Which sublayers a trace traces as it goes (``traceable``), where their Functionals go
    (``store``: id(first output) -> (that output, Functional)), and the adapter doing it."""

    def __init__(self, adapter: Any, traceable: Optional[Any], store: Optional[dict]) -> None:
        self.adapter = adapter
        self.traceable = traceable if store is not None else None
        self.store = store

    def call(self, layer: Any, args: tuple, kwargs: dict) -> Optional[Any]:
        """The outputs of ``layer(*args, **kwargs)`` inferred by tracing its call (fresh
        symbolic tensors, the Functional stored), or None when it is not to be traced or its
        trace fails (Keras' own inference then answers, and the walk retries and reports)."""
        if self.traceable is None or not self.traceable(layer):
            return None
        from keras.src.ops.symbolic_arguments import SymbolicArguments

        keras = self.adapter.keras
        arguments = SymbolicArguments(*args, **kwargs)
        tensors = arguments.keras_tensors
        try:
            functional, outputs = self.adapter._trace(
                layer, tensors, [tuple(t.shape) for t in tensors], [t.dtype for t in tensors],
                arguments.fill_in, self, outermost=False)
        except Exception:  # noqa: BLE001 - the walk traces it again and keeps the reason
            return None

        spec = keras.tree.map_structure(_fresh_tensor(keras), outputs)
        first = keras.tree.flatten(spec)[0]
        self.store[id(first)] = (first, functional)
        return spec


def _fresh_tensor(keras: Any) -> Any:
    """A function giving, for a symbolic or constant tensor, a new symbolic one of its shape
    and dtype without history (what a ``compute_output_spec`` returns), and any other value
    as it is."""
    def fresh(value: Any) -> Any:
        if isinstance(value, keras.KerasTensor):
            return keras.KerasTensor(value.shape, dtype=value.dtype, sparse=value.sparse)
        if keras.ops.is_tensor(value):  # a constant output: a symbolic tensor, as Keras gives
            return keras.KerasTensor(value.shape, dtype=keras.backend.standardize_dtype(
                value.dtype))
        return value

    return fresh


_OWN = object()  # marks a layer whose compute_output_spec is its class's


@contextlib.contextmanager
def _complete_sublayer_specs(operation: Any, keras: Any, pretrace: _Pretrace):
    """While a traced call runs, every sublayer of ``operation`` infers its outputs as Keras
    would, except:

    - a sublayer that will be traced in turn is traced now (``pretrace``), and its outputs
      are the trace's;
    - its own inference raises: its ``compute_output_spec`` takes fewer arguments than its
      ``call`` (keras-hub's ``CachedMultiHeadAttention`` passes ``cache=`` on to
      ``MultiHeadAttention``'s), or it is a Sequential built for another input size than it
      is called with (kimm's ``ReparameterizableConv2D`` builds its 1x1 branch on the padded
      size and calls it on the unpadded input), which Keras' input check refuses;
    - it leaves sizes unknown that its fully known inputs determine (EinsumDense's output
      shape is fixed when it is built, on a ``None`` sequence length; a later
      ``ops.reshape(y, ops.shape(y))`` would bake that ``None`` into the trace).

    In the last two cases the outputs are found by running ``call`` on the symbolic tensors
    themselves, else on backend symbolic tensors (what Keras does for a layer without its own
    shape inference). Set on the instances (their ``__dict__`` shadows the class method) and
    removed afterwards: no layer class is patched. One name in Keras' layer module is, for the
    time of the trace: the class of the record of a symbolic call, so that it accepts a None
    output (below).
    """
    from keras.src.backend import compute_output_spec

    def unknown(tensors: list) -> bool:
        return any(d is None for t in tensors for d in t.shape)

    fresh = _fresh_tensor(keras)

    def from_call(layer: Any, args: tuple, kwargs: dict, keras_answer: Any) -> Any:
        # The call run on the symbolic tensors themselves (Keras' shape inference of each
        # keras.ops call, in Python) is several times cheaper than on backend tensors; the
        # nodes it leaves hang off the inputs unused (a Functional is read from its outputs).
        kwargs = _accepted(layer.call, kwargs)
        try:
            outputs = layer.call(*args, **kwargs)
        except Exception:  # noqa: BLE001 - the backend's inference then answers
            outputs = None
        flat = keras.tree.flatten(outputs)
        if flat and all(isinstance(t, keras.KerasTensor) for t in flat) and not unknown(flat):
            return keras.tree.map_structure(fresh, outputs)
        try:
            return compute_output_spec(layer.call, *args, **kwargs)
        except Exception:  # noqa: BLE001 - Keras' own answer (or its error) stands
            if keras_answer is None:
                raise
            return keras_answer

    def completing(layer: Any, own: Any) -> Any:
        def spec(*args: Any, **kwargs: Any) -> Any:
            traced = pretrace.call(layer, args, kwargs)
            if traced is not None:
                return traced
            try:
                outputs = own(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the call may know better; else re-raised
                try:
                    return from_call(layer, args, kwargs, None)
                except Exception:  # noqa: BLE001
                    raise exc from None
            symbolic = [t for t in keras.tree.flatten((args, kwargs))
                        if isinstance(t, keras.KerasTensor)]
            if unknown(keras.tree.flatten(outputs)) and not unknown(symbolic):
                return from_call(layer, args, kwargs, outputs)
            return outputs

        return spec

    saved = []
    for layer in operation._flatten_layers(include_self=False):
        saved.append((layer, layer.__dict__.get("compute_output_spec", _OWN)))
        layer.__dict__["compute_output_spec"] = completing(layer, layer.compute_output_spec)
    # A block returning (x, None) (keras-hub's DeiT blocks without attention scores): Keras'
    # node of a symbolic call refuses the None. The call's Python value keeps it; the node
    # records the tensors only. (Keras' layer module's name for the class, swapped back after.)
    from keras.src.layers import layer as layer_module

    keras_node = layer_module.Node

    class NoneTolerantNode(keras_node):
        def __init__(self, operation, call_args=None, call_kwargs=None, outputs=None):
            flat = None if outputs is None else [
                t for t in keras.tree.flatten(outputs) if t is not None]
            super().__init__(operation, call_args, call_kwargs, flat)

    layer_module.Node = NoneTolerantNode
    try:
        yield
    finally:
        layer_module.Node = keras_node
        for layer, own in saved:
            if own is _OWN:
                layer.__dict__.pop("compute_output_spec", None)
            else:
                layer.__dict__["compute_output_spec"] = own


#: Keyword values that hold no tensor (training=False, mask=None, axis=-1).
_PLAIN_VALUES = (bool, int, float, str, type(None))

#: The underlying function of a method -> the parameters of its bound form (None: the
#: signature cannot be read). The shape inference of a model at new sizes asks about one
#: method per call node, the latency and field probes about each call's ``training``;
#: reading a signature costs more than the rest of the question.
_PARAMETERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _parameters(method: Any) -> Optional[tuple]:
    """The ``inspect.Parameter``s ``method`` takes (bound: without ``self``), None when its
    signature cannot be read. Bound methods are remembered by their function."""
    key = getattr(method, "__func__", None)
    if key is not None and key in _PARAMETERS:
        return _PARAMETERS[key]
    try:
        parameters = tuple(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        parameters = None
    if key is not None:
        try:
            _PARAMETERS[key] = parameters
        except TypeError:  # (no weak reference to it: asked again next time)
            pass
    return parameters


def _named(parameters: tuple) -> list:
    """The parameters Keras aligns shapes with: positional or keyword, not ``*args`` or
    ``**kwargs``."""
    return [p for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY, p.KEYWORD_ONLY)]


def _accepted(function: Any, kwargs: dict) -> dict:
    """``kwargs`` without the names ``function`` takes no parameter for."""
    if not kwargs:  # (most calls pass none: no signature to read)
        return kwargs
    parameters = _parameters(function)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return kwargs
    names = {p.name for p in parameters}
    return {k: v for k, v in kwargs.items() if k in names}


def _call_parameters(call: Any) -> list[str]:
    """Names of the positional parameters of a bound ``call`` method."""
    return [p.name for p in _parameters(call) or ()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _is_dim(value: Any) -> bool:
    return value is None or isinstance(value, int)


class TfKerasAdapter(Keras3Adapter):
    """Legacy Keras 2: the ``tf_keras`` package (what ``TF_USE_LEGACY_KERAS=1`` selects)."""

    name = "tf_keras"

    def __init__(self) -> None:
        import tf_keras

        self.keras = tf_keras
        from tf_keras.src.engine.keras_tensor import KerasTensor

        self._keras_tensor = KerasTensor
        self._layer_output_spec = None  # (Keras 2 infers shapes by rebuilding the model)
        _register_tf_keras_rules(tf_keras)

    def sequential_graph(self, model: Any) -> Optional[Any]:
        # A Keras 2 Sequential is its own graph network once it knows its input.
        return model if getattr(model, "_is_graph_network", False) else None

    def built_clone(self, model: Any, input_shape: Any) -> Optional[Any]:
        clone = self.keras.models.clone_model(model)
        clone.build((None, *tuple(input_shape)))
        if not getattr(clone, "_is_graph_network", False):
            # Built without an Input, Keras 2 keeps no graph; give it one.
            inputs = self.keras.Input(tuple(input_shape))
            clone = self.keras.Model(inputs, clone(inputs), name=model.name)
        return clone

    def with_input_shapes(self, model: Any, shapes: list) -> Any:
        """Keras 2 has no symbolic shape inference per node: rebuild the graph on new Inputs
        (``clone_model`` makes new layers with the same configuration; weights do not matter
        for counting)."""
        inputs = [self.keras.Input(tuple(shape), dtype=t.dtype, name=t.name.split(":")[0])
                  for shape, t in zip(shapes, model.inputs)]
        return self.keras.models.clone_model(model, input_tensors=inputs)

    @staticmethod
    def operation(node: Any) -> Any:
        return node.layer

    @staticmethod
    def variable_size(variable: Any) -> int:
        return math.prod(int(d) for d in variable.shape)

    @staticmethod
    def layer_weights(layer: Any) -> tuple[list, list]:
        return list(layer.trainable_weights), list(layer.non_trainable_weights)

    def closes_over_tensors(self, functional: Any) -> Optional[str]:
        return None  # tf_keras layers are not traced into their calls

    def argument_variables(self, node: Any) -> list:
        return []

    @staticmethod
    def producer_name(tensor: Any) -> str:
        return tensor._keras_history.layer.name

    def trace_call(self, node: Any, like: Optional[list] = None, keep_leading: bool = False,
                   traceable: Optional[Any] = None, pretraced: Optional[dict] = None) -> Any:
        raise NotImplementedError("tracing custom layers needs Keras 3")

    def trace_model(self, model: Any, shapes: Optional[list]) -> Any:
        return None

    def backend_function(self, node: Any) -> tuple:
        raise NotImplementedError("a backend trace of a custom layer needs Keras 3")

    @staticmethod
    def input_tensors(node: Any) -> list:
        return list(node.keras_inputs)

    def outputs(self, node_or_model_outputs: Any) -> list:
        import tensorflow as tf

        return list(tf.nest.flatten(node_or_model_outputs))

    def node_outputs(self, node: Any) -> list:
        return self.outputs(node.outputs)  # a Keras 2 node keeps the structure returned

    def call_arguments(self, node: Any) -> tuple:
        return tuple(node.call_args)

    def flat_tensors(self, structure: Any) -> list:
        import tensorflow as tf

        return [t for t in tf.nest.flatten(structure) if isinstance(t, self._keras_tensor)]

    @staticmethod
    def dtype(tensor: Any) -> str:
        return getattr(tensor.dtype, "name", str(tensor.dtype))

    def call_node(self, node: Any, inputs: list, training: Optional[bool] = False) -> list:
        import tensorflow as tf

        tensors = {id(t): value for t, value in zip(node.keras_inputs, inputs)}

        def fill(value: Any) -> Any:
            return tensors.get(id(value), value) if isinstance(value, self._keras_tensor) \
                else value

        args, kwargs = tf.nest.map_structure(fill, (tuple(node.call_args),
                                                    dict(node.call_kwargs)))
        layer = node.layer
        if training is not None and _takes(layer.call, "training"):
            kwargs["training"] = training
        return list(tf.nest.flatten(layer(*args, **kwargs)))


def argument_names(layer: Any, node: Any) -> Optional[list]:
    """The ``call()`` parameter each input tensor of one Keras node was passed as.

    A node's input tensors (hence a rule's ``input_shapes``) are its call arguments flattened
    the way Keras flattens them: the positional arguments in order, then the keyword arguments
    *sorted by name*. So ``mha(q, v, attention_mask=m)`` gives ``[q, v, m]``, ``mha(q, v,
    key=k, attention_mask=m)`` gives ``[q, v, m, k]`` and ``mha(query=q, value=v, key=k)``
    gives ``[k, q, v]``: no fixed position (first, last) names the value. Here each argument
    is replaced by its parameter name (positional ones through the signature of ``call``) and
    flattened with Keras' own ``tree.flatten``, which keeps the tensors' order by construction.
    Returns None when the node's structure cannot be read.
    """
    import keras

    arguments = getattr(node, "arguments", None)  # Keras 3
    if arguments is not None:
        args, kwargs, tensors = arguments.args, arguments.kwargs, arguments.keras_tensors
    else:  # tf_keras (Keras 2) nodes keep the same three things under other names
        args = getattr(node, "call_args", None)
        kwargs = getattr(node, "call_kwargs", None)
        tensors = getattr(node, "keras_inputs", None)
        if args is None or kwargs is None or tensors is None:
            return None
    params = _call_parameters(layer.call)
    if not params:
        return None
    ids = {id(t) for t in tensors}

    def label(name, structure):
        return keras.tree.map_structure(lambda x: name if id(x) in ids else None, structure)

    positional = [params[i] if i < len(params) else "*args" for i in range(len(args))]
    labelled = (
        tuple(label(name, arg) for name, arg in zip(positional, args)),
        {name: label(name, value) for name, value in kwargs.items()},
    )
    names = [n for n in keras.tree.flatten(labelled) if n is not None]
    return names if len(names) == len(tensors) else None


def inbound_calls(layer: Any) -> list[tuple[Optional[list], list]]:
    """Every call of ``layer`` in a graph: its inputs' parameter names (see
    :func:`argument_names`) and shapes without batch, in the node's input order."""
    calls = []
    for node in getattr(layer, "_inbound_nodes", ()):
        arguments = getattr(node, "arguments", None)
        tensors = arguments.keras_tensors if arguments is not None else node.keras_inputs
        calls.append((argument_names(layer, node), [tuple(t.shape[1:]) for t in tensors]))
    return calls


def is_embedding(operation: Any) -> bool:
    """Whether a call is a lookup in an embedding table (Keras 3 or tf_keras ``Embedding``,
    and subclasses such as keras-hub's ``ReversibleEmbedding``)."""
    return any(cls.__name__ == "Embedding" and cls.__module__.split(".")[0] in
               ("keras", "tf_keras") for cls in type(operation).__mro__)


def attention_masks(layer: Any) -> Optional[str]:
    """How the calls of an attention layer or ``ops.dot_product_attention`` restrict which
    positions each query sees: a phrase naming the first causal mask or mask tensor among its
    calls (:func:`attention_mask_argument`), or None when no call has either."""
    for node in getattr(layer, "_inbound_nodes", ()):
        causal, position = attention_mask_argument(layer, node)
        if causal:
            return "a causal mask: position t sees positions up to t"
        if position is not None:
            return "an attention_mask tensor" if _is_layer(layer) else "a mask tensor"
    return None


def attention_mask_argument(operation: Any, node: Any) -> tuple[bool, Optional[int]]:
    """For one call of an attention layer or of ``ops.dot_product_attention``: whether it is
    causal (``use_causal_mask=True``; the operation's ``is_causal``), and the position among
    the call's input tensors of its attention mask (a layer's ``attention_mask``, the op's
    ``mask``), None without one. (A layer's padding masks, ``query_mask``, ``value_mask`` and
    Attention's ``mask``, only leave out padding: no restriction of a full-length input.)"""
    arguments = getattr(node, "arguments", None)
    kwargs = arguments.kwargs if arguments is not None else getattr(node, "call_kwargs", {})
    causal = (kwargs or {}).get("use_causal_mask") is True \
        or getattr(operation, "is_causal", False) is True
    name = "attention_mask" if _is_layer(operation) else "mask"
    names = argument_names(operation, node) or []
    return causal, names.index(name) if name in names else None


def _is_layer(operation: Any) -> bool:
    import keras

    return isinstance(operation, keras.layers.Layer)


def call_arguments_of(op: Any) -> Optional[tuple]:
    """The positional arguments of a ``keras.ops`` operation's call (an instance is made
    per call; a model called again calls it again with the same arguments). None when the
    calls differ or cannot be read."""
    nodes = getattr(op, "_inbound_nodes", None) or ()
    calls = [getattr(getattr(node, "arguments", None), "args", None) for node in nodes]
    if not calls or calls[0] is None:
        return None
    first = calls[0]
    try:
        same = all(len(c) == len(first) and all(a is b or (is_static_argument(a) and a == b)
                                                for a, b in zip(c[1:], first[1:]))
                   for c in calls[1:])
    except Exception:  # noqa: BLE001 - an argument without a plain equality: not comparable
        return None
    return first if same else None


def is_graph_tensor(value: Any) -> bool:
    """Whether a call argument is a tensor of the graph (a symbolic tensor some call
    produced: it carries Keras' history), not a weight or a constant."""
    return hasattr(value, "_keras_history")


def is_static_argument(value: Any) -> bool:
    """An index argument known before running (ints, slices, Ellipsis, None and tuples of
    them), not a tensor."""
    if isinstance(value, (tuple, list)):
        return all(is_static_argument(v) for v in value)
    return value is None or value is Ellipsis or isinstance(value, (int, slice))


def computes_batch_statistics(operation: Any, training_argument: Optional[bool]) -> bool:
    """A batch normalisation that normalises by the batch's own mean and variance in a
    training step: Keras (3 and 2) does so only while the layer is trainable (a frozen one
    keeps its moving statistics) and not called, or inside a call, with ``training=False``."""
    is_batch_norm = any(cls.__name__ == "BatchNormalization"
                        and cls.__module__.split(".")[0] in ("keras", "tf_keras")
                        for cls in type(operation).__mro__)
    return (is_batch_norm and bool(getattr(operation, "trainable", False))
            and training_argument is not False)


_ADAPTERS: dict[str, Keras3Adapter] = {}


def adapter_for(model: Any) -> Keras3Adapter:
    """The adapter for a model object; raises NotAGraphModelError for non-Keras objects.

    ``tf_keras`` is only consulted when it is already imported (a tf_keras model cannot exist
    otherwise), so analysing Keras 3 models never imports it.
    """
    if "keras" not in _ADAPTERS:
        _ADAPTERS["keras"] = Keras3Adapter()
    if _ADAPTERS["keras"].owns(model):
        return _ADAPTERS["keras"]
    if "tf_keras" in sys.modules:
        if "tf_keras" not in _ADAPTERS:
            _ADAPTERS["tf_keras"] = TfKerasAdapter()
        if _ADAPTERS["tf_keras"].owns(model):
            return _ADAPTERS["tf_keras"]
    raise NotAGraphModelError(
        "modelstats analyses Keras models; expected a keras.Model (Functional or Sequential, "
        f"Keras 3 or tf_keras). Received: an object of type {type(model).__name__}."
    )


def adapter_for_call(operation: Any) -> Keras3Adapter:
    """The adapter for one call node's operation: a layer of either Keras, or a ``keras.ops``
    operation (which only Keras 3 records as a node); NotAGraphModelError otherwise."""
    if "keras" not in _ADAPTERS:
        _ADAPTERS["keras"] = Keras3Adapter()
    keras3 = _ADAPTERS["keras"]
    if isinstance(operation, keras3.keras.Operation):
        return keras3
    return adapter_for(operation)


# Raw TensorFlow functions that Keras 2 wraps in TFOpLambda, and the keras.ops operation whose
# rules count them. Anything else stays unsupported: never guessed.
TF_OP_EQUIVALENTS = {
    "math.truediv": "TrueDivide",
    "math.divide": "Divide",
    "math.subtract": "Subtract",
    "math.add": "Add",
    "__operators__.add": "Add",
    "math.multiply": "Multiply",
    "math.maximum": "Maximum",
    "math.minimum": "Minimum",
    "math.negative": "Negative",
    "math.abs": "Absolute",
    "math.square": "Square",
    "math.sqrt": "Sqrt",
    "math.exp": "Exp",
    "math.log": "Log",
    "math.tanh": "Tanh",
    "cast": "Cast",
    "identity": "Copy",
}


def _register_tf_keras_rules(tf_keras: Any) -> None:
    """Resolve tf_keras classes with the Keras 3 rules of the same name, in the built-in
    registry (a user's rules still win)."""
    import keras
    import keras.src.ops.numpy as numpy_ops

    from modelstats import rules
    from modelstats.registry import Rule, Unsupported, dispatching

    registry = rules.DEFAULT
    for name in dir(tf_keras.layers):
        theirs, ours = getattr(tf_keras.layers, name), getattr(keras.layers, name, None)
        if isinstance(theirs, type) and isinstance(ours, type):
            registry.alias(theirs, ours)
    registry.alias(tf_keras.Model, keras.Model)
    registry.alias(tf_keras.Sequential, keras.Sequential)

    from tf_keras.src.layers.core.tf_op_layer import TFOpLambda

    def equivalent(layer: Any) -> type:
        symbol = getattr(layer, "symbol", "?")
        name = TF_OP_EQUIVALENTS.get(symbol)
        op = getattr(numpy_ops, name, None) if name else None
        if op is None:
            raise Unsupported(f"no rule for TFOpLambda tf.{symbol}")
        return op

    def tf_op_cost(layer, input_shapes, output_shapes):
        return dispatching().cost(layer, input_shapes, output_shapes, as_class=equivalent(layer))

    def tf_op_geometry(layer, input_shapes, output_shapes):
        return dispatching().geometry(layer, input_shapes, output_shapes,
                                      as_class=equivalent(layer))

    registry.add_builtin(Rule(TFOpLambda, cost=tf_op_cost, geometry=tf_op_geometry))
