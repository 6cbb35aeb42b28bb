"""ONNX graph -> spec layers: each node mapped to a layer kind, as mapping.py maps torch.fx's.

Needs the ``onnx`` package (pip install -e '.[onnx]' in a checkout), never torch: the graph's own shapes
(ONNX's shape inference) are what each layer is checked against. Parameters are the graph's
floating-point weights that its layers read (the initializers, and the Identity copies of one
that PyTorch's exporter writes where several weights start equal), BatchNormalization's running
statistics aside: they are buffers. An ONNX graph has no MAC count of its own, so MACs are the
spec's alone.

Names: PyTorch's exporter names each node after the modules it ran in
('/layer2/layer2.0/downsample/downsample.0/Conv'), from which come the layers' names and the
module instances that make blocks; other graphs get names by operator type.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ...errors import ArchcalcError, MissingDependency
from ...layers.shapes import FeatureMap, Shape, Steps, Vector, shape_of
from .mapping import Recorder, Unsupported, Value, _compact, _Skip, _Unsupported, _whole, nearest_kinds

ONNX_BATCH_FREE = ("batch", "N", "batch_size")


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependency("reading ONNX files needs the onnx package, which is not installed: "
                                "pip install -e '.[onnx]' in a checkout (or pip install onnx)") from None
    return onnx


def import_onnx(path: str, allow_opaque: bool = False, name: str | None = None):
    """The Imported spec of the ONNX file at ``path``."""
    from . import Side, finish

    onnx = require_onnx()
    if not Path(path).is_file():
        raise ArchcalcError(f"no such file: {path}", hint="give the path of an .onnx file")
    try:
        model = onnx.load(path)
        _positive_perms(model.graph)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - a file that is not ONNX
        raise ArchcalcError(f"cannot read {path} as ONNX: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                            hint="give a model saved by torch.onnx.export or onnx.save") from None
    mapper = OnnxMapper(inferred, allow_opaque)
    mapped = mapper.run()
    title = name or Path(path).stem
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    header = [f"imported by archcalc from {Path(path).name} (ONNX, opset {opset})"]
    source = Side(mapper.parameter_count(), None, tuple(mapper.output_shapes()))
    imported = finish(mapped, title, header, source)
    imported.origin = "the ONNX graph"
    return imported


def onnx_weights(path: str, transposed=()) -> dict:
    """The weights of the ONNX file at ``path`` by name, as numpy arrays (onnx.numpy_helper): its
    initializers, and the Identity copies PyTorch's exporter writes of a weight that started equal
    to another; those named in ``transposed`` (the import's Mapped.transposed: a MatMul's stored
    [in, units]) turned to PyTorch's [units, in]."""
    onnx = require_onnx()
    from onnx import numpy_helper

    model = onnx.load(path)
    weights = {init.name: numpy_helper.to_array(init).copy() for init in model.graph.initializer}  # writable
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    for name in transposed:
        weights[name] = weights[name].T
    return weights


def onnx_spec(path: str):
    """The Spec an ONNX file imports to (``archcalc inspect model.onnx``): what ``archcalc import``
    would write, read back, without torch."""
    from ...spec import loads

    imported = import_onnx(path)
    if not imported.exact:
        raise ArchcalcError(f"the spec imported from {path} differs from the ONNX graph",
                            hint="a bug in archcalc's importer: please report it with the file")
    return loads(imported.text, path)


class OnnxMapper(Recorder):
    def __init__(self, model, allow_opaque: bool = False):
        super().__init__()
        from onnx import numpy_helper

        self.onnx_model = model
        self.graph = model.graph
        self.allow_opaque = allow_opaque
        # a weight is read for its shape alone (converting ResNet's 11M floats would cost seconds);
        # small and integer initializers (sizes for a reshape) are read as values
        self.stored = {init.name: init for init in self.graph.initializer}
        self.constants = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer
                          if init.data_type not in FLOATS or _elements(init.dims) <= SMALL}
        self.weights = {name for name, init in self.stored.items() if init.data_type in FLOATS}
        self.shapes: dict = {}
        self.types: dict = {init.name: init.data_type for init in self.graph.initializer}  # element types
        for info in [*self.graph.value_info, *self.graph.output, *self.graph.input]:
            if info.type.tensor_type.HasField("shape"):
                dims = info.type.tensor_type.shape.dim
                self.shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
            self.types[info.name] = info.type.tensor_type.elem_type
        self.values: dict = {}
        self.consumers: dict = {}
        self.producers: dict = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producers[name] = node
        self.buffers: set = set()   # BatchNormalization's running statistics
        self.used: set = set()      # weights read by a mapped layer
        self.skip: set = set()      # nodes folded into an earlier layer (a MatMul's bias Add), by first output
        self.silu: set = set()      # Sigmoid nodes read only by x * sigmoid(x)
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
        self.owners: dict = {}      # a weight's name -> the layer that holds it (shares: for the next reader)
        self.transposed: dict = {}  # Transpose of a weight -> the weight (a MatMul reads W transposed)
        self.sliced: dict = {}      # the first rows of a weight (W[:T], learned positions) -> the weight
        self.units: dict = {}       # a module mapped whole: what it computes -> (kind, path, its nodes, its inputs)
        self.in_unit: set = set()   # the first outputs of the nodes inside such a unit

    # --- the walk ---------------------------------------------------------------------------
    def run(self):
        self.find_units()
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        for info in inputs:
            name = "input" if len(inputs) == 1 else info.name
            shape = self.input_shape(info)
            self.out.inputs[name] = shape
            self.names.add(name)
            self.values[info.name] = Value(ref=name, shape=shape)
        for node in self.graph.node:
            if node.output[0] in self.skip:
                continue
            self.infer(node)
            unit = next((self.units[name] for name in node.output if name in self.units), None)
            if node.output[0] in self.in_unit and unit is None and not self.folds(node):
                continue  # inside a unit: mapped whole where it ends
            try:
                if unit is None:
                    produced = self.visit(node)
                else:
                    kind, *rest = unit
                    produced = getattr(self, kind)(node, *rest)
                    produced = [produced if name in self.units else Value() for name in node.output]
            except _Skip:
                produced = [Value()] * len(node.output)
            except _Unsupported as exc:
                self.out.unsupported.append(Unsupported(exc.where or self.where(node), exc.what,
                                                        nearest_kinds(exc.what)))
                produced = [self.phantom(name) for name in node.output]
            if isinstance(produced, Value):
                produced = [produced]
            for name, value in zip(node.output, produced):
                self.values[name] = value
        self.out.outputs = tuple(self.tensor(self.values[o.name], None).ref for o in self.graph.output
                                 if self.values.get(o.name) is not None and self.values[o.name].ref)
        self.name_modules()
        return self.finish()

    def evaluate(self, name: str):
        """The value of ``name`` where constants alone compute it (sizes from the Shape of a tensor
        whose sizes are known included), folding the nodes that do, which the walk may not have
        reached (the end of torch.chunk's second half, read when its first is mapped); else None."""
        if name in self.constants or name in self.weights or name not in self.producers:
            return None if name in self.weights else self.constants.get(name)
        node = self.producers[name]
        if node.op_type == "Shape":
            if None in (self.shapes.get(node.input[0]) or (None,)):
                return None
        elif any(source and self.evaluate(source) is None for source in node.input):
            return None
        self.infer(node)
        try:
            produced = self.visit(node)
        except (_Skip, _Unsupported):
            return None
        for output, value in zip(node.output, produced if isinstance(produced, list) else [produced]):
            self.values[output] = value
        return self.constants.get(name)

    def input_shape(self, info) -> Shape:
        dims = self.shapes[info.name][1:]
        if any(d is None for d in dims):
            raise ArchcalcError(f"the ONNX input {info.name} has sizes that are not fixed: {list(self.shapes[info.name])}",
                                hint="export the model with a fixed input size (no dynamic axes but the batch)")
        elem = info.type.tensor_type.elem_type
        if elem in (6, 7):  # int32, int64: token ids
            return Steps(dims)
        readers = [node.op_type for node in self.consumers.get(info.name, [])]
        recurrent = any(info.name in reads for kind, _, _, reads in self.units.values() if kind == "recurrent")
        if len(dims) == 2 and (recurrent or any(op in ("MatMul", "Gemm", "LayerNormalization", "RNN", "LSTM", "GRU")
                                                for op in readers)):
            return Steps(dims)
        return shape_of(dims)

    def phantom(self, name: str) -> Value:
        shape = self.shapes.get(name)
        if not shape or len(shape) < 2 or any(d is None for d in shape[1:]):
            return Value()
        return Value(ref="<refused>", shape=shape_of(shape[1:]), phantom=True)

    def where(self, node) -> str:
        path = self.module_path(node)
        return f"{path or 'graph'} ({node.op_type})"

    def module_path(self, node) -> str:
        """'/layer2/layer2.0/downsample/downsample.0/Conv' -> 'layer2.0.downsample.0' (PyTorch's
        exporter writes each module's name under its parent's; a Sequential's child as
        'parent.index')."""
        return ".".join(self.scopes(node)[-1:]) if self.scopes(node) else ""

    def scopes(self, node) -> list:
        """The full module paths a PyTorch-exported node ran in, outermost first."""
        parts = node.name.split("/")
        if len(parts) < 3 or parts[0] != "":
            return []
        paths: list = []
        for index, segment in enumerate(parts[1:-1]):
            previous = parts[index] if index else ""
            if previous and segment.startswith(previous + "."):
                base = paths[-2] if len(paths) > 1 else ""
            else:
                base = paths[-1] if paths else ""
            paths.append(f"{base}.{segment}" if base else segment)
        return paths

    def name_modules(self) -> None:
        """A module path that holds exactly one layer is that layer's name (conv1, layer1.0.bn1);
        otherwise its layers are named inside it (layer1.0.add)."""
        holding: dict = {}
        for entry in self.out.entries:
            for path, _ in entry.scope:
                holding[path] = holding.get(path, 0) + 1
        renamed = {}
        for entry in self.out.entries:
            if entry.scope and holding[entry.scope[-1][0]] == 1:
                path = entry.scope[-1][0]
                if path not in self.names:
                    self.names.discard(entry.name)
                    self.names.add(path)
                    renamed[entry.name] = path
                    entry.name, entry.scope = path, entry.scope[:-1]
        for entry in self.out.entries:
            entry.inputs = tuple(_renamed(ref, renamed) for ref in entry.inputs)
            if "shares" in entry.args:
                entry.args["shares"] = _renamed(entry.args["shares"], renamed)
        self.out.outputs = tuple(_renamed(ref, renamed) for ref in self.out.outputs)

    def visit(self, node):
        op = node.op_type
        attrs = self.attributes(node)
        if op == "Shape":  # the sizes alone: its input need not be mapped yet (evaluate)
            return self.op_Shape(node, [], attrs)
        ins = [self.values.get(name) if name in self.values else self.constant(name) for name in node.input]
        if op == "Identity" and node.input[0] in self.weights:
            self.weights.add(node.output[0])  # an exporter's copy of a weight that started equal to another
            self.stored[node.output[0]] = self.stored[node.input[0]]
            return Value(param=node.output[0])
        if op == "Constant":
            from onnx import numpy_helper

            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            if tensor is None:
                raise _Unsupported(self.where(node), "Constant without a tensor value")
            self.constants[node.output[0]] = numpy_helper.to_array(tensor)
            return Value(is_const=True, const=self.constants[node.output[0]])
        if all(v is not None and v.is_const for v in ins if v is not None) and \
                not (op == "Gather" and node.input[0] in self.weights):
            return self.fold(node, ins)
        if op == "Identity":
            return ins[0]
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise _Unsupported(self.where(node), op)
        return handler(node, ins, attrs)

    def fold(self, node, ins):
        """A node over constants only (the sizes an exporter computes for a reshape): evaluated."""
        try:
            from onnx import helper
            from onnx.reference import ReferenceEvaluator
            names = [f"in{i}" for i in range(len(ins))]
            graph = helper.make_graph([helper.make_node(node.op_type, names, list(node.output), domain=node.domain,
                                                        **self.attributes(node))], "fold",
                                      [helper.make_tensor_value_info(n, 1, None) for n in names],
                                      [helper.make_tensor_value_info(o, 1, None) for o in node.output])
            evaluator = ReferenceEvaluator(helper.make_model(graph, opset_imports=self.onnx_model.opset_import))
            results = evaluator.run(None, {n: v.const for n, v in zip(names, ins)})
        except Exception:  # noqa: BLE001 - an unknown constant: the layer that reads it says so
            return [Value(is_const=True) for _ in node.output]
        for name, value in zip(node.output, results):
            self.constants[name] = value
        return [Value(is_const=True, const=value) for value in results]

    def constant(self, name: str):
        if name == "":
            return None
        if name in self.weights:
            return Value(param=name)
        if name in self.constants:
            return Value(is_const=True, const=self.constants[name])
        raise _Skip

    @staticmethod
    def attributes(node) -> dict:
        from onnx import helper

        values = {}
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            values[attribute.name] = value.decode() if isinstance(value, bytes) else value
        return values

    # --- recording ----------------------------------------------------------------------
    def add(self, node, kind, fields, inputs, *, word=None, tensors=(), note="", channels_last=False, count=1,
            check=True, path=None) -> Value:
        """One layer for ``node`` (named after its module path; ``path``: the layer is that module),
        checked against ONNX's shapes. A layer whose weights an earlier one holds ``shares`` them
        (a tied LM head reads the token embedding's very tensor)."""
        if any(v.phantom for v in inputs):
            return self.phantom(node.output[0])
        scope = tuple((path, "") for path in self.scopes(node))
        word = word or kind
        if path is not None:
            name, scope = path, scope[:[p for p, _ in scope].index(path)] if (path, "") in scope else scope
        else:
            name = f"{scope[-1][0]}.{word}" if scope else word
        wanted = None
        if check:
            if count > 1:
                wanted = [self.per_sample(o, node) for o in node.output]
            else:
                wanted = self.per_sample(node.output[0], node)
        owners = {self.owners.get(tensor) for tensor in tensors}
        shares = owners.pop() if tensors and len(owners) == 1 and None not in owners else None
        if shares is not None:
            tensors = ()
        self.used.update(tensors)
        value = self.emit(kind, fields, inputs, name=name, scope=scope, wanted=wanted, where=self.where(node),
                          what=node.op_type, tensors=tensors, note=note, channels_last=channels_last, count=count,
                          origin="ONNX", shares=shares)
        for tensor in tensors:
            self.owners.setdefault(tensor, value.ref)
        return value

    def infer(self, node) -> None:
        """The output shapes of ``node`` where ONNX's shape inference of the whole graph left them
        open (a pad or a reshape whose sizes the exporter computes from Shape, folded here):
        inferred for this node alone, from its inputs' shapes and the constants it reads."""
        if all(self.shapes.get(name) is not None and None not in self.shapes[name] for name in node.output if name):
            return
        from onnx import defs, helper, numpy_helper, shape_inference

        types, data = {}, {}
        for name in node.input:
            if not name:
                continue
            if name in self.constants:
                value = self.constants[name]
                data[name] = numpy_helper.from_array(value, name)
                types[name] = helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
            elif self.shapes.get(name) is not None and name in self.types:
                types[name] = helper.make_tensor_type_proto(self.types[name], self.shapes[name])
            elif name in self.stored and not isinstance(self.stored[name], _Dims):  # a weight, by its dims
                types[name] = helper.make_tensor_type_proto(self.stored[name].data_type, self.weight_shape(name))
            else:
                return
        try:
            schema = defs.get_schema(node.op_type, self.opset, node.domain)
            outputs = shape_inference.infer_node_outputs(schema, node, types, data,
                                                         opset_imports=list(self.onnx_model.opset_import))
        except Exception:  # noqa: BLE001 - left open: the layer that reads it says so
            return
        for name, proto in outputs.items():
            tensor = proto.tensor_type
            if tensor.HasField("shape"):
                self.shapes[name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            self.types[name] = tensor.elem_type

    def per_sample(self, name: str, node) -> tuple:
        shape = self.shapes.get(name)
        if shape is None or any(d is None for d in shape[1:]):
            raise _Unsupported(self.where(node), f"{node.op_type} whose output shape ONNX cannot infer")
        return tuple(shape[1:])

    def tensor(self, value, node) -> Value:
        if value is None or value.is_const or (value.ref is None and value.param is None):
            raise _Skip
        if value.param is not None:
            raise _Unsupported(self.where(node) if node is not None else "graph",
                               "a weight read as a value")
        if value.channels_last:
            rank = len(value.shape)
            # written where a layer reads it as it is: a [C, L] map so is a sequence [L, C] (as mapping.tensor)
            return self.add(node, "permute", {"dims": [*range(1, rank), 0], "sequence": rank == 2},
                            [Value(ref=value.ref, shape=value.shape)], check=False)
        return value

    def weight(self, value, node) -> tuple:
        """The shape of a stored weight."""
        if value is None or value.param is None:
            raise _Unsupported(self.where(node), f"{node.op_type} whose weights are computed, not stored")
        return self.weight_shape(value.param)

    def weight_shape(self, name: str) -> tuple:
        return tuple(int(d) for d in self.stored[name].dims)

    def parameter_count(self) -> int:
        """The weights' elements: every floating-point weight a layer reads, BatchNormalization's
        running statistics aside."""
        return sum(_elements(self.stored[name].dims) for name in self.weights
                   if name in self.used and name not in self.buffers)

    def output_shapes(self) -> list:
        return [tuple(self.shapes[o.name][1:]) for o in self.graph.output]

    # --- operators --------------------------------------------------------------------
    def op_Conv(self, node, ins, attrs, transposed=False):
        x = self.tensor(ins[0], node)
        weight = self.weight(ins[1], node)
        rank = len(weight) - 2
        kernel = tuple(attrs.get("kernel_shape", weight[2:]))
        strides = tuple(attrs.get("strides", (1,) * rank))
        dilations = tuple(attrs.get("dilations", (1,) * rank))
        pads = tuple(attrs.get("pads", (0,) * 2 * rank))
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise _Unsupported(self.where(node), f"{node.op_type} with auto_pad {attrs['auto_pad']}")
        group = attrs.get("group", 1)
        tensors = tuple(name for name in node.input[1:3] if name)
        begins, ends = pads[:rank], pads[rank:]
        if begins != ends:
            raise _Unsupported(self.where(node), f"{node.op_type} with uneven padding {list(pads)}")
        bias = len(node.input) > 2 and node.input[2] != ""
        if transposed:
            filters = weight[1] * group
            output_padding = tuple(attrs.get("output_padding", (0,) * rank))
            fields = {"filters": filters, "kernel": _compact(kernel), "stride": _compact(strides),
                      "padding": _compact(begins), "output_padding": _compact(output_padding),
                      "dilation": _compact(dilations), "groups": group, "bias": bias}
            return self.add(node, "convtranspose", fields, [x], word="convtranspose", tensors=tensors)
        padding = "valid" if not any(begins) else _compact(begins)
        fields = {"filters": weight[0], "kernel": _compact(kernel), "stride": _compact(strides),
                  "padding": padding, "dilation": _compact(dilations), "groups": group, "bias": bias}
        if not _whole(x.shape, kernel, strides, begins, dilations):
            fields["rounding"] = "floor"
        return self.add(node, "conv", fields, [x], word="conv", tensors=tensors)

    def op_ConvTranspose(self, node, ins, attrs):
        return self.op_Conv(node, ins, attrs, transposed=True)

    def op_BatchNormalization(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        for value in ins[1:5]:
            self.weight(value, node)
        self.buffers.update(node.input[3:5])
        momentum = round(1.0 - _float32(attrs.get("momentum", 0.9)), 12)  # ONNX keeps 0.9 of the old statistics
        fields = {"eps": _float32(attrs.get("epsilon", 1e-5)), "momentum": momentum}
        return self.add(node, "batchnorm", fields, [x], word="batchnorm", tensors=tuple(node.input[1:5]))

    def op_Gemm(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        weight = self.weight(ins[1], node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise _Unsupported(self.where(node), "Gemm with transA, alpha or beta")
        units = weight[0] if attrs.get("transB", 0) else weight[1]
        bias = len(node.input) > 2 and node.input[2] != ""
        if bias:
            self.weight(ins[2], node)
        tensors = tuple(name for name in node.input[1:3] if name)
        return self.add(node, "dense", {"units": int(units), "bias": bias}, [x], word="linear", tensors=tensors)

    def op_MatMul(self, node, ins, attrs):
        """x @ W with W stored ([in, units]): dense; an Add of a stored [units] vector right after is its bias."""
        x = ins[0]
        if x is None or x.ref is None:
            raise _Skip
        weight = self.weight(ins[1], node)
        if len(weight) != 2:
            raise _Unsupported(self.where(node), "MatMul of two computed tensors")
        # the tensor as PyTorch holds it, [units, in]: the weight a Transpose read, else the stored
        # [in, units] (constant folding's), which the copy of weights transposes
        tensors = [self.transposed.get(node.input[1], node.input[1])]
        if node.input[1] not in self.transposed:
            self.out.transposed.add(node.input[1])
        readers = self.consumers.get(node.output[0], [])
        output = node
        if len(readers) == 1 and readers[0].op_type == "Add":
            other = [name for name in readers[0].input if name != node.output[0]]
            if other and other[0] in self.weights and self.weight_shape(other[0]) == (weight[1],):
                tensors.append(other[0])
                self.skip.add(readers[0].output[0])
                output = readers[0]
        keep = x.channels_last
        fields = {"units": int(weight[1]), "bias": len(tensors) == 2, **({"axes": "channels"} if keep else {})}
        value = self.add(output, "dense", fields, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                         word="linear", tensors=tuple(tensors), channels_last=keep)
        if output is not node:
            self.values[output.output[0]] = value
        return value

    def elementwise(self, node, ins, kind):
        a, b = ins[0], ins[1]
        params = [v for v in (a, b) if v is not None and v.param is not None]
        if kind == "add" and len(params) == 1:
            x = self.tensor(b if a is params[0] else a, node)
            weight = params[0].param
            if weight in self.sliced:  # x + W[:T]: learned positions (GPT-2's wpe, BERT's)
                source = self.sliced[weight]
                return self.add(node, "positions", {"max": self.weight_shape(source)[0]}, [x], word="positions",
                                tensors=(source,))
            dims = self.weight_shape(weight)
            if dims in (tuple(x.shape), (1, *x.shape)):  # x + W, W a tensor of x's shape (ViT's positions)
                shape = {"steps": x.shape[0], "features": x.shape[1]} if isinstance(x.shape, Steps) else list(x.shape)
                table = self.add(node, "parameter", {"shape": shape}, [], word="parameter", tensors=(weight,),
                                 check=False)
                return self.add(node, "add", {}, [x, table], word="add")
        if kind == "multiply" and len(params) == 1:
            x = self.tensor(b if a is params[0] else a, node)
            factor = self.weight_shape(params[0].param)
            channels = x.shape[-1] if isinstance(x.shape, (Steps, Vector)) else x.shape[0]
            wanted = (channels,) if isinstance(x.shape, (Steps, Vector)) else (channels, *[1] * (len(x.shape) - 1))
            if factor not in (wanted, (1, *wanted)):
                raise _Unsupported(self.where(node), "Mul by a stored tensor")
            return self.add(node, "scale", {}, [x], word="scale", tensors=(params[0].param,))
        if any(v is not None and (v.is_const or v.param is not None) for v in (a, b)):
            raise _Unsupported(self.where(node), f"{node.op_type} of a tensor and a constant")
        return self.add(node, kind, {}, [self.tensor(a, node), self.tensor(b, node)], word=kind)

    def op_Add(self, node, ins, attrs):
        return self.elementwise(node, ins, "add")

    def op_Sub(self, node, ins, attrs):
        return self.elementwise(node, ins, "subtract")

    def op_Mul(self, node, ins, attrs):
        if node.name in self.silu or any(name in self.silu for name in node.input):
            x = next(v for name, v in zip(node.input, ins) if name not in self.silu)
            keep = x.channels_last
            return self.add(node, "silu", {}, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                            word="silu", channels_last=keep)
        return self.elementwise(node, ins, "multiply")

    def activation(self, node, ins, kind, fields=None):
        x = ins[0]
        if x is None or (x.ref is None and not x.phantom):
            raise _Skip
        keep = x.channels_last
        return self.add(node, kind, fields or {}, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                        word=kind, channels_last=keep)

    def op_Relu(self, node, ins, attrs):
        return self.activation(node, ins, "relu")

    def op_Tanh(self, node, ins, attrs):
        return self.activation(node, ins, "tanh")

    def op_Sigmoid(self, node, ins, attrs):
        readers = self.consumers.get(node.output[0], [])
        if len(readers) == 1 and readers[0].op_type == "Mul" and node.input[0] in readers[0].input:
            self.silu.add(node.output[0])  # x * sigmoid(x): silu, written by the Mul
            return Value(ref=None, is_const=False)
        return self.activation(node, ins, "sigmoid")

    def op_Elu(self, node, ins, attrs):
        return self.activation(node, ins, "elu", {"alpha": float(attrs.get("alpha", 1.0))})

    def op_LeakyRelu(self, node, ins, attrs):
        return self.activation(node, ins, "leakyrelu", {"negative_slope": round(float(attrs.get("alpha", 0.01)), 12)})

    def op_Softplus(self, node, ins, attrs):
        return self.activation(node, ins, "softplus")

    def op_HardSwish(self, node, ins, attrs):
        return self.activation(node, ins, "hardswish")

    def op_HardSigmoid(self, node, ins, attrs):
        if abs(attrs.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(attrs.get("beta", 0.5) - 0.5) > 1e-6:
            raise _Unsupported(self.where(node), "HardSigmoid other than relu6(x + 3) / 6")
        return self.activation(node, ins, "hardsigmoid")

    def op_Gelu(self, node, ins, attrs):
        return self.activation(node, ins, "gelu", {"approximate": attrs.get("approximate", "none")})

    def op_Mish(self, node, ins, attrs):
        return self.activation(node, ins, "mish")

    def op_Abs(self, node, ins, attrs):
        return self.activation(node, ins, "abs")

    def op_Clip(self, node, ins, attrs):
        low = ins[1].const if len(ins) > 1 and ins[1] is not None and ins[1].is_const else attrs.get("min")
        high = ins[2].const if len(ins) > 2 and ins[2] is not None and ins[2].is_const else attrs.get("max")
        if low is None or high is None or float(low) != 0.0 or float(high) != 6.0:
            raise _Unsupported(self.where(node), "Clip other than relu6")
        return self.activation(node, ins, "relu6")

    def op_Softmax(self, node, ins, attrs, kind="softmax"):
        x = self.tensor(ins[0], node)
        rank = len(x.shape) + 1
        axis = attrs.get("axis", -1) % rank - 1
        default = len(x.shape) - 1 if isinstance(x.shape, Steps) else 0
        if axis < 0:
            raise _Unsupported(self.where(node), f"{node.op_type} over the batch axis")
        return self.add(node, kind, {"axis": None if axis == default else axis}, [x], word=kind)

    def op_LogSoftmax(self, node, ins, attrs):
        return self.op_Softmax(node, ins, attrs, "logsoftmax")

    def op_PRelu(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        slope = self.weight(ins[1], node)
        return self.add(node, "prelu", {"num_parameters": _elements(slope)}, [x], word="prelu",
                        tensors=(node.input[1],))

    def pool(self, node, ins, attrs, kind):
        x = self.tensor(ins[0], node)
        kernel = tuple(attrs["kernel_shape"])
        rank = len(kernel)
        strides = tuple(attrs.get("strides", (1,) * rank))
        pads = tuple(attrs.get("pads", (0,) * 2 * rank))
        dilations = tuple(attrs.get("dilations", (1,) * rank))
        if pads[:rank] != pads[rank:]:
            raise _Unsupported(self.where(node), f"{node.op_type} with uneven padding {list(pads)}")
        if kind == "avgpool" and any(pads) and not attrs.get("count_include_pad", 0):
            raise _Unsupported(self.where(node), "AveragePool that leaves the padding out of the mean")
        fields = {"kernel": _compact(kernel), "stride": None if strides == kernel else _compact(strides),
                  "padding": _compact(pads[:rank])}
        if kind == "maxpool":
            fields["dilation"] = _compact(dilations)
        if not _whole(x.shape, kernel, strides, pads[:rank], dilations):
            fields["rounding"] = "ceil" if attrs.get("ceil_mode", 0) else "floor"
        return self.add(node, kind, fields, [x], word=kind)

    def op_MaxPool(self, node, ins, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise _Unsupported(self.where(node), "MaxPool with indices")
        return self.pool(node, ins, attrs, "maxpool")

    def op_AveragePool(self, node, ins, attrs):
        return self.pool(node, ins, attrs, "avgpool")

    def op_GlobalAveragePool(self, node, ins, attrs):
        return self.add(node, "adaptiveavgpool", {"output": 1}, [self.tensor(ins[0], node)], word="avgpool")

    def op_GlobalMaxPool(self, node, ins, attrs):
        return self.add(node, "adaptivemaxpool", {"output": 1}, [self.tensor(ins[0], node)], word="maxpool")

    def op_ReduceMean(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        axes = attrs.get("axes")
        if axes is None and len(ins) > 1 and ins[1] is not None and ins[1].is_const:
            axes = [int(a) for a in ins[1].const]
        rank = len(x.shape) + 1
        if isinstance(x.shape, Steps) and len(x.shape) == 2 and [a % rank for a in axes or []] == [1] and \
                not attrs.get("keepdims", 1):
            return self.add(node, "mean", {}, [x], word="mean")  # the mean of a sequence's steps
        if not isinstance(x.shape, FeatureMap) or sorted(a % rank for a in axes or []) != list(range(2, rank)):
            raise _Unsupported(self.where(node), "ReduceMean over other axes than a map's positions")
        if attrs.get("keepdims", 1):
            return self.add(node, "adaptiveavgpool", {"output": 1}, [x], word="mean")
        return self.add(node, "globalavgpool", {}, [x], word="mean")

    def reshaped(self, node, ins):
        x = self.tensor(ins[0], node)
        shape = self.per_sample(node.output[0], node)
        if tuple(shape) == tuple(x.shape):
            return x
        shuffle = self.shuffle(node, x, shape)
        if shuffle is not None:
            return shuffle
        if len(shape) == 1 and len(x.shape) > 1:
            return self.add(node, "flatten", {}, [x], word="flatten")
        return self.add(node, "reshape", {"shape": list(shape)}, [x], word="reshape")

    def shuffle(self, node, x: Value, shape: tuple) -> Value | None:
        """A channel shuffle as torchvision writes it (and archcalc's tests export nn.ChannelShuffle):
        [C, H, W] reshaped to [g, C/g, H, W], the two group axes swapped, reshaped back; None
        where the reshape is not the first of these three."""
        after = self.consumers.get(node.output[0], [])
        if not isinstance(x.shape, FeatureMap) or len(shape) != len(x.shape) + 1 or \
                shape[0] * shape[1] != x.shape[0] or tuple(shape[2:]) != tuple(x.shape[1:]) or len(after) != 1 or \
                after[0].op_type != "Transpose" or \
                list(self.attributes(after[0]).get("perm", [])) != [0, 2, 1, *range(3, len(shape) + 1)]:
            return None
        back = self.consumers.get(after[0].output[0], [])
        if len(back) != 1 or back[0].op_type != "Reshape":
            return None
        self.infer(back[0])
        if self.shapes.get(back[0].output[0]) != (self.shapes.get(node.input[0]) or ()):
            return None
        value = self.add(back[0], "channel_shuffle", {"groups": int(shape[0])}, [x], word="channel_shuffle")
        self.skip.update((after[0].output[0], back[0].output[0]))
        self.values[back[0].output[0]] = value
        return value

    def op_Flatten(self, node, ins, attrs):
        if attrs.get("axis", 1) != 1:
            raise _Unsupported(self.where(node), "Flatten of the batch axis")
        return self.reshaped(node, ins)

    def op_Reshape(self, node, ins, attrs):
        return self.reshaped(node, ins)

    def op_Squeeze(self, node, ins, attrs):
        return self.reshaped(node, ins)

    def op_Unsqueeze(self, node, ins, attrs):
        return self.reshaped(node, ins)

    def op_Transpose(self, node, ins, attrs):
        x = ins[0]
        perm = list(attrs.get("perm", []))
        if x is not None and x.param is not None and perm == [1, 0]:  # W transposed for x @ W (nn.Linear on a map)
            self.weights.add(node.output[0])
            self.stored[node.output[0]] = _Dims(tuple(reversed(self.weight_shape(x.param))))
            self.transposed[node.output[0]] = x.param
            return Value(param=node.output[0])
        if x is None or x.ref is None:
            raise _Skip
        if not perm or perm[0] != 0:
            raise _Unsupported(self.where(node), "Transpose of the batch axis")
        per_sample = [d - 1 for d in perm[1:]]
        if per_sample == sorted(per_sample):  # two transposes that cancel, as the exporter joins them
            return x
        spatial = len(x.shape) - 1
        if isinstance(x.shape, FeatureMap) and spatial >= 1:
            if not x.channels_last and per_sample == [*range(1, spatial + 1), 0]:
                return Value(ref=x.ref, shape=x.shape, channels_last=True)
            if x.channels_last and per_sample == [spatial, *range(spatial)]:
                return Value(ref=x.ref, shape=x.shape)
        x = self.tensor(x, node)
        shape = self.per_sample(node.output[0], node)
        sequence = len(shape) == 2 and isinstance(x.shape, (Steps, FeatureMap)) and \
            any(r.op_type in ("MatMul", "Gemm", "LayerNormalization", "Concat", "Add")
                for r in self.consumers.get(node.output[0], []))  # as mapping.sequence_follows
        return self.add(node, "permute", {"dims": per_sample, "sequence": sequence}, [x], word="permute")

    def op_Concat(self, node, ins, attrs):
        parts = [self.tensor(v, node) for v in ins]
        axis = attrs["axis"] % (len(parts[0].shape) + 1) - 1
        default = 0 if isinstance(parts[0].shape, FeatureMap) else len(parts[0].shape) - 1
        return self.add(node, "concat", {"axis": None if axis == default else axis}, parts, word="cat")

    def op_Split(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        axis = attrs.get("axis", 0) % (len(x.shape) + 1)
        sizes = [self.per_sample(o, node)[axis - 1] for o in node.output]
        value = self.add(node, "split", {"sizes": sizes, "axis": axis - 1}, [x], word="split", count=len(sizes))
        if value.phantom:
            return [self.phantom(name) for name in node.output]
        shapes = self.out.shapes[-1]
        return [Value(ref=f"{value.ref}.{i}", shape=shape) for i, shape in enumerate(shapes)]

    def op_LRN(self, node, ins, attrs):
        fields = {"size": attrs["size"], "alpha": round(float(attrs.get("alpha", 1e-4)), 12),
                  "beta": round(float(attrs.get("beta", 0.75)), 12), "k": round(float(attrs.get("bias", 1.0)), 12)}
        return self.add(node, "lrn", fields, [self.tensor(ins[0], node)], word="lrn")

    def op_LayerNormalization(self, node, ins, attrs):
        x = ins[0]
        if x is None or x.ref is None:
            raise _Skip
        scale = self.weight(ins[1], node)
        bias = len(ins) > 2 and ins[2] is not None
        if bias:
            self.weight(ins[2], node)
        if not bias:
            raise _Unsupported(self.where(node), "LayerNormalization without a bias")
        fields = {"eps": _float32(attrs.get("epsilon", 1e-5)), "axes": self.norm_axes(node, x, scale)}
        keep = x.channels_last
        return self.add(node, "layernorm", fields, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                        word="layernorm", tensors=tuple(node.input[1:3]), channels_last=keep)

    def norm_axes(self, node, x: Value, normalized: tuple) -> str | None:
        """The ``axes`` of a norm over the ``normalized`` shape of x: channels (of a map held
        channels-last), the last (None) or all."""
        from ...layers.norm import normalized_shape

        if x.channels_last:
            return "channels"
        for axes in (None, "all"):
            if tuple(normalized_shape(x.shape, axes)) == normalized:
                return axes
        raise _Unsupported(self.where(node), f"{node.op_type} over {list(normalized)}")

    def op_Pad(self, node, ins, attrs):
        x = self.tensor(ins[0], node)
        pads = ins[1].const if len(ins) > 1 and ins[1] is not None and ins[1].is_const else attrs.get("pads")
        value = ins[2].const if len(ins) > 2 and ins[2] is not None and ins[2].is_const else 0
        if pads is None or (value is not None and float(value) != 0.0):
            raise _Unsupported(self.where(node), "Pad with computed sizes or a value other than 0")
        pads = [int(p) for p in pads]
        rank = len(pads) // 2
        begins, ends = pads[:rank], pads[rank:]
        if begins[:2] != [0, 0] or ends[:2] != [0, 0]:
            raise _Unsupported(self.where(node), "Pad of the batch or channel axis")
        torch_order = [side for axis in reversed(range(2, rank)) for side in (begins[axis], ends[axis])]
        mode = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[
            attrs.get("mode", "constant")]
        return self.add(node, "pad", {"padding": _compact(torch_order), "mode": mode}, [x], word="pad")

    def op_Gather(self, node, ins, attrs):
        table, ids = ins[0], ins[1]
        if table is not None and table.ref is not None and ids is not None and ids.is_const and \
                ids.const is not None and ids.const.ndim == 0 and attrs.get("axis", 0) == 1:
            x = self.tensor(table, node)  # x[:, index]: one step of a sequence
            return self.add(node, "select", {"index": int(ids.const)}, [x], word="select")
        if table is None or table.param is None or attrs.get("axis", 0) != 0:
            raise _Unsupported(self.where(node), "Gather")
        weight = self.weight_shape(table.param)
        return self.add(node, "embedding", {"vocabulary": weight[0], "dim": weight[1]},
                        [self.tensor(ids, node)], word="embedding", tensors=(table.param,))

    def op_Slice(self, node, ins, attrs):
        """W[:T] of a weight (learned positions, read by the Add after it), or one of the slices
        of a computed tensor that together tile it (parts)."""
        table = ins[0]
        if table is not None and table.ref is not None:
            return self.parts(node, table)
        consts = [v.const if v is not None and v.is_const else None for v in ins[1:]]
        if table is None or table.param is None or len(consts) < 3 or any(c is None for c in consts[:3]):
            raise _Unsupported(self.where(node), "Slice")
        starts, ends, axes = ([int(i) for i in c.reshape(-1)] for c in consts[:3])
        steps = [int(i) for i in consts[3].reshape(-1)] if len(consts) > 3 and consts[3] is not None else [1]
        rows = self.weight_shape(table.param)
        if axes != [0] or starts != [0] or steps != [1]:
            raise _Unsupported(self.where(node), "Slice of a weight other than its first rows")
        self.stored[node.output[0]] = _Dims((min(ends[0], rows[0]), *rows[1:]))
        self.sliced[node.output[0]] = table.param
        return Value(param=node.output[0])

    def parts(self, node, x: Value) -> Value:
        """The Slices of one tensor along one axis that tile it, as the exporter writes torch.chunk
        and torch.split: one split layer, each Slice its part (the others skipped)."""
        x = self.tensor(x, node)
        shape = self.shapes.get(node.input[0]) or ()
        ranges = []
        for sibling in (n for n in self.consumers.get(node.input[0], []) if n.op_type == "Slice"):
            consts = [self.evaluate(name) if name else None for name in sibling.input[1:]]
            if len(consts) < 3 or any(c is None for c in consts[:3]) or None in shape:
                raise _Unsupported(self.where(node), "Slice of a computed tensor by computed bounds")
            (start,), (end,), (axis,) = ([int(i) for i in c.reshape(-1)] for c in consts[:3])
            step = [int(i) for i in consts[3].reshape(-1)] if len(consts) > 3 and consts[3] is not None else [1]
            axis %= len(shape)
            size = shape[axis]
            start, end = (min(max(b + size if b < 0 else b, 0), size) for b in (start, end))
            if step != [1] or axis == 0:
                raise _Unsupported(self.where(node), "Slice with a step, or of the batch axis")
            ranges.append((axis, start, end, sibling))
        ranges.sort(key=lambda r: r[1])
        bounds = [r[1] for r in ranges] + [ranges[-1][2]]
        if len({r[0] for r in ranges}) != 1 or bounds[0] != 0 or bounds[-1] != shape[ranges[0][0]] or \
                any(r[2] != following for r, following in zip(ranges, bounds[1:])):
            raise _Unsupported(self.where(node), "Slices that do not split their tensor into parts")
        sizes = [end - start for _, start, end, _ in ranges]
        value = self.add(node, "split", {"sizes": sizes, "axis": ranges[0][0] - 1}, [x], word="split",
                         count=len(sizes), check=False)
        if value.phantom:
            return value
        parts = [Value(ref=f"{value.ref}.{i}", shape=part) for i, part in enumerate(self.out.shapes[-1])]
        for part, (_, _, _, sibling) in zip(parts, ranges):
            self.infer(sibling)
            if tuple(part.shape) != self.per_sample(sibling.output[0], sibling):
                raise _Unsupported(self.where(node), f"Slice as split gives {list(part.shape)}, but ONNX gives "
                                                     f"{list(self.per_sample(sibling.output[0], sibling))}")
            self.values[sibling.output[0]] = part
            self.skip.add(sibling.output[0])
        return self.values[node.output[0]]

    def op_Expand(self, node, ins, attrs):
        """A weight over the batch (a class token, positions: archcalc's Parameter): parameter."""
        weight = ins[0]
        if weight is None or weight.param is None:
            raise _Unsupported(self.where(node), "Expand of a computed tensor")
        shape = self.per_sample(node.output[0], node)
        if _elements(shape) != _elements(self.weight_shape(weight.param)):
            raise _Unsupported(self.where(node), "Expand of a weight over more than the batch")
        fields = {"shape": {"steps": shape[0], "features": shape[1]} if len(shape) == 2 else list(shape)}
        return self.add(node, "parameter", fields, [], word="parameter", tensors=(weight.param,))

    def find_units(self) -> None:
        """The modules mapped whole, from the nodes PyTorch's exporter writes under their path:
        attention (archcalc's Attention, nn.MultiheadAttention), the module of a Softmax between
        two products of computed tensors; a recurrence (archcalc's Recurrent, nn.RNN/LSTM/GRU),
        the outermost module around RNN/LSTM/GRU nodes; local response and RMS normalisation
        (nn.RMSNorm written as its decomposition), the module of their Div. Each reads one or two tensors and makes
        one, where it is mapped; the constants inside are still folded."""
        dynamic = {i.name for i in self.graph.input if i.name not in self.constants}
        for node in self.graph.node:
            fixed = node.op_type == "Shape" and None not in (self.shapes.get(node.input[0]) or (None,))
            if not fixed and any(name in dynamic for name in node.input):
                dynamic.update(name for name in node.output if name)
        outputs = {o.name for o in self.graph.output}

        def unit(path: str):
            nodes = [node for node in self.graph.node if path in self.scopes(node)]
            made = {name for node in nodes for name in node.output}
            members = {node.output[0] for node in nodes}
            reads = list(dict.fromkeys(name for node in nodes for name in node.input
                                       if name in dynamic and name not in made))
            results = [name for node in nodes for name in node.output if name in dynamic and
                       (name in outputs or any(c.output[0] not in members for c in self.consumers.get(name, [])))]
            return (nodes, reads, results[0]) if len(results) == 1 and 1 <= len(reads) <= 2 else None

        for node in self.graph.node:
            if node.op_type == "Softmax":
                paths, kind = self.scopes(node)[-1:], "attention"
            elif node.op_type in RECURRENT:
                paths, kind = self.scopes(node), "recurrent"
            elif node.op_type == "Div" and {"AveragePool", "Pow"} <= {n.op_type for n in self.graph.node
                                                                      if self.scopes(n)[-1:] == self.scopes(node)[-1:]}:
                paths, kind = self.scopes(node)[-1:], "lrn"
            elif node.op_type == "Div" and self.scopes(node) and \
                    {n.op_type for n in self.graph.node if self.scopes(n)[-1:] == self.scopes(node)[-1:]} \
                    & {"ReduceMean", "Sqrt", "Sub"} == {"ReduceMean", "Sqrt"}:
                paths, kind = self.scopes(node)[-1:], "rmsnorm"
            else:
                continue
            for path in paths:
                if any(path == unit_path for unit_path, *_ in self.units.values()):
                    break
                found = unit(path)
                if found is None:
                    continue
                nodes, reads, result = found
                products = [n for n in nodes if n.op_type == "MatMul" and all(i in dynamic for i in n.input)]
                if (kind == "attention" and len(products) < 2) or (kind in ("lrn", "rmsnorm") and node.input[0] not in reads):
                    continue
                self.units[result] = (kind, path, nodes, reads)
                self.in_unit.update(n.output[0] for n in nodes)
                break

    def folds(self, node) -> bool:
        """Whether ``node`` inside a unit is still visited: a constant, or computed from constants."""
        return node.op_type in ("Constant", "Shape") or \
            all(not name or (name in self.constants and name not in self.weights) for name in node.input)

    def lrn(self, end, path: str, nodes: list, reads: list):
        """Local response normalisation as F.local_response_norm writes it: x / (k + alpha *
        mean of x² over ``size`` channels) ** beta, an AveragePool of kernel ``size`` over the
        channels; alpha, k and beta the constants of the Mul, Add and Pow after it."""
        def constant(op: str):  # the scalar of the ``op`` node that also reads a computed tensor
            return next((float(self.constants[name].reshape(-1)[0]) for node in nodes if node.op_type == op and
                         any(other not in self.constants for other in node.input)
                         for name in node.input if name in self.constants and self.constants[name].size == 1), None)

        pool = next(node for node in nodes if node.op_type == "AveragePool")
        fields = {"size": int(self.attributes(pool)["kernel_shape"][0]), "alpha": constant("Mul"),
                  "beta": constant("Pow"), "k": constant("Add")}
        if None in fields.values():
            raise _Unsupported(self.where(end), "local response normalisation whose constants are not read")
        fields = {key: value if key == "size" else _float32(value) for key, value in fields.items()}
        return self.add(end, "lrn", fields, [self.tensor(self.values.get(reads[0]), end)], path=path)

    def rmsnorm(self, end, path: str, nodes: list, reads: list):
        """RMS normalisation as F.rms_norm computes it: x / sqrt(mean of x·x over the normalised
        (last) axes + eps), times the weight where affine; eps the constant of the Add, the axes
        the ReduceMean's."""
        mean = next(node for node in nodes if node.op_type == "ReduceMean")
        axes = self.attributes(mean).get("axes")
        if axes is None and len(mean.input) > 1 and mean.input[1] in self.constants:
            axes = self.constants[mean.input[1]].reshape(-1).tolist()
        eps = next((float(self.constants[name].reshape(-1)[0]) for node in nodes if node.op_type == "Add"
                    for name in node.input if name in self.constants and self.constants[name].size == 1), None)
        x = self.values.get(reads[0])
        shape = self.per_sample(reads[0], end)
        rank = len(shape) + 1
        if eps is None or not axes or sorted(a % rank for a in axes) != list(range(rank - len(axes), rank)):
            raise _Unsupported(self.where(end), "RMS normalisation whose axes or eps are not read")
        weights = list(dict.fromkeys(name for node in nodes for name in node.input if name in self.weights))
        fields = {"eps": _float32(eps), "axes": self.norm_axes(end, x, tuple(shape[-len(axes):])),
                  "affine": bool(weights)}
        keep = x.channels_last
        return self.add(end, "rmsnorm", fields, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, end)],
                        tensors=tuple(weights), channels_last=keep, path=path)

    def recurrent(self, end, path: str, nodes: list, reads: list):
        """One recurrence: RNN, LSTM or GRU nodes (one per layer, a direction attribute), hidden
        from the operator, the rest from the weights as PyTorch holds them (weight_ih, weight_hh,
        then the biases, per layer and direction; ``bias: single`` where PyTorch's second bias
        is no weight); ``returns: last`` where the result is a vector; an initial state [H] the
        second input."""
        ops = [node for node in nodes if node.op_type in RECURRENT]
        attrs = self.attributes(ops[0])
        direction = attrs.get("direction", "forward")
        if len({node.op_type for node in ops}) != 1 or direction == "reverse":
            raise _Unsupported(self.where(end), f"{ops[0].op_type} other than forward or bidirectional layers")
        directions = 2 if direction == "bidirectional" else 1
        weights = list(dict.fromkeys(name for node in nodes for name in node.input
                                     if name in self.weights and name not in self.transposed))
        matrices = [name for name in weights if len(self.weight_shape(name)) == 2]
        vectors = [name for name in weights if len(self.weight_shape(name)) == 1]
        per_layer = len(ops) * directions
        bias = {0: False, per_layer: "single", 2 * per_layer: True}.get(len(vectors))
        if len(matrices) != 2 * per_layer or bias is None:
            raise _Unsupported(self.where(end), f"{ops[0].op_type} whose weights are not read")
        activations = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", ["Tanh"])]
        fields = {"hidden": int(attrs["hidden_size"]), "layers": len(ops), "bidirectional": directions == 2,
                  "bias": bias, "nonlinearity": activations[0].lower() if ops[0].op_type == "RNN" else None}
        if fields["nonlinearity"] == "tanh":
            del fields["nonlinearity"]
        result = next(name for name, unit in self.units.items() if unit[1] == path)
        if len(self.per_sample(result, end)) == 1:
            fields["returns"] = "last"
        values = [self.tensor(self.values.get(name), end) for name in reads]
        inputs = sorted(values, key=lambda value: not isinstance(value.shape, Steps))  # the sequence, then a state
        return self.add(end, ops[0].op_type.lower(), fields, inputs, tensors=tuple(_pytorch_order(weights)),
                        path=path)

    def attention(self, end, path: str, nodes: list, reads: list):
        """One attention unit: its heads from the Softmax's scores [N, heads, T, S] (or [N*heads,
        T, S]), the rest from its weights, as PyTorch holds them, in the order it reads them:
        two matrices are fused q/k/v and an output projection, four separate ones; a Trilu
        builds the causal mask; Cos and Sin turn q and k (rotary), theta the base of a Pow or, where
        the exporter folded the angles to a constant, read from their table (_rotary_base)."""
        inputs = [self.tensor(self.values.get(name), end) for name in reads]
        weights = list(dict.fromkeys(name for node in nodes for name in node.input
                                     if name in self.weights and name not in self.transposed))
        matrices = [name for name in weights if len(self.weight_shape(name)) == 2]
        vectors = [name for name in weights if len(self.weight_shape(name)) == 1]
        softmax = next(node for node in nodes if node.op_type == "Softmax")
        scores = self.shapes.get(softmax.input[0]) or ()
        batch = (self.shapes.get(reads[0]) or (None,))[0]
        heads = scores[1] if len(scores) == 4 else scores[0] // batch if len(scores) == 3 and batch else None
        if not heads or len(matrices) not in (2, 4) or len(vectors) not in (0, len(matrices)):
            raise _Unsupported(self.where(end), "attention whose heads or projections are not read")
        d = inputs[0].shape[-1]
        shapes = [self.weight_shape(name) for name in matrices]
        width = shapes[-1][1]  # the output projection's [d, heads * head_dim]
        head_dim = width // heads
        kv = (shapes[0][0] - width) // 2 if len(matrices) == 2 else shapes[1][0]
        ops = {node.op_type for node in nodes}
        theta = next((float(self.constants[node.input[0]]) for node in nodes if node.op_type == "Pow" and
                      node.input[0] in self.constants and self.constants[node.input[0]].size == 1), None)
        if theta is None and "Cos" in ops:
            theta = _rotary_base(self.evaluate(next(node for node in nodes if node.op_type == "Cos").input[0]))
        fields = {"heads": heads, "kv_heads": kv // head_dim if kv // head_dim != heads else None,
                  "head_dim": head_dim if head_dim != d // heads else None, "bias": bool(vectors),
                  "qkv": "separate" if len(matrices) == 4 else None, "causal": "Trilu" in ops,
                  "rotary": (int(theta) if theta and theta.is_integer() else theta) if {"Cos", "Sin"} & ops else None}
        if fields["rotary"] is None and {"Cos", "Sin"} & ops:
            raise _Unsupported(self.where(end), "rotary positions whose base is not read")
        return self.add(end, "attention", fields, inputs, word="attention", tensors=tuple(weights), path=path)

    def op_Shape(self, node, ins, attrs):
        """The shape of a tensor whose sizes are all fixed (an export at one batch size): a
        constant, so that the sizes an exporter computes from it (a reshape's, a pad's) fold."""
        import numpy

        shape = self.shapes.get(node.input[0])
        if shape is None or any(d is None for d in shape):
            raise _Unsupported(self.where(node), "Shape of a tensor whose sizes are not fixed")
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        value = numpy.array(shape[start:end], dtype=numpy.int64)
        self.constants[node.output[0]] = value
        return Value(is_const=True, const=value)

    def op_Dropout(self, node, ins, attrs):
        ratio = ins[1].const if len(ins) > 1 and ins[1] is not None and ins[1].is_const else attrs.get("ratio", 0.5)
        return self.add(node, "dropout", {"rate": round(float(ratio), 12)}, [self.tensor(ins[0], node)], word="dropout")


def _positive_perms(graph) -> None:
    """Transpose's perm counted from 0: PyTorch's TorchScript exporter writes movedim(-1, 1) as
    perm [0, -1, 1, 2] (and two movedims that cancel as [0, 1, 2, -1]), which ONNX's shape
    inference rejects; -1 is the last axis, as PyTorch means it."""
    for node in graph.node:
        if node.op_type == "Transpose":
            for attribute in node.attribute:
                if attribute.name == "perm" and any(p < 0 for p in attribute.ints):
                    rank = len(attribute.ints)
                    attribute.ints[:] = [p % rank for p in attribute.ints]


RECURRENT = ("RNN", "LSTM", "GRU")
_PYTORCH_NAME = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")


def _pytorch_order(names: list) -> list:
    """A recurrence's weights in PyTorch's state_dict order (per layer and direction: weight_ih,
    weight_hh, bias_ih, bias_hh), where they carry PyTorch's names; else as read."""
    matches = [_PYTORCH_NAME.search(name) for name in names]
    if not all(matches):
        return names
    order = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [name for _, name in sorted(
        ((int(m.group(3)), bool(m.group(4)), order.index(f"{m.group(1)}_{m.group(2)}")), name)
        for m, name in zip(matches, names))]


class _Dims(NamedTuple):
    """A computed weight's shape, read as an initializer's (its dims)."""

    dims: tuple


FLOATS = (1, 10, 11, 16)  # float32, float16, float64, bfloat16 (onnx.TensorProto's numbers)
SMALL = 4096             # a floating initializer up to this many elements is read as values too


def _rotary_base(angles) -> float | None:
    """theta of a rotary table the exporter folded to a constant, angles[t, i] = t * theta^(-i/half)
    for i < half (the rest repeating them): theta = angles[1, 1]^(-half), to the 5 digits that
    float32 keeps through that power; None where there is no such table."""
    if angles is None or angles.ndim != 2 or angles.shape[0] < 2 or angles.shape[1] < 4 or not angles[1, 1] > 0:
        return None
    return float(f"{float(angles[1, 1]) ** -(angles.shape[1] // 2):.5g}")


def _float32(value: float) -> float:
    """A float32 constant as its shortest decimal (the 1e-4 that float32 holds as 9.9999997e-05)."""
    import numpy

    return float(repr(numpy.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _elements(dims) -> int:
    total = 1
    for d in dims:
        total *= int(d)
    return total


def _renamed(ref: str, renamed: dict) -> str:
    if ref in renamed:
        return renamed[ref]
    base, dot, index = ref.rpartition(".")
    return f"{renamed[base]}.{index}" if dot and base in renamed else ref
