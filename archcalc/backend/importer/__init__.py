"""``archcalc import``: a PyTorch model (or an ONNX file) -> a readable spec with the same numbers.

    trace.py    import the callable, build the model (meta device), trace it with torch.fx
    mapping.py  each traced operation -> a layer kind, checked against the traced shape
    onnx.py     the same from an ONNX graph
    spec/write.py (no torch) writes the layers as YAML: defaults, blocks, repeats

Nothing is written unless the spec, read back and analyzed, has the source's parameters and
output shapes (and its MACs, as PyTorch's FlopCounterMode counts the convolutions and matrix
products): ``Imported.check`` holds both sides.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ...errors import ArchcalcError, Location
from ...spec.write import Written, write_spec

DEFAULT_INPUT = "3x224x224"


@dataclass
class Side:
    params: int
    macs: int | None
    outputs: tuple       # per-sample output shapes, as plain tuples


@dataclass
class Imported:
    """An import: the spec text, its analysis, and the numbers of both sides."""

    text: str
    written: Written
    mapped: object           # mapping.Mapped: the entries, the source tensors each holds
    analysis: object         # archcalc's Analysis of the written spec
    source: Side
    spec: Side
    model: object = None     # the source nn.Module (PyTorch imports; on the meta device where it could be)
    notes: list = field(default_factory=list)
    origin: str = "PyTorch"  # who counted the source's numbers

    @property
    def opaque(self) -> tuple:
        """The layers kept opaque (--allow-opaque): their MACs are not counted."""
        return self.analysis.opaque

    @property
    def exact(self) -> bool:
        """Both sides' numbers equal; with opaque layers, whose MACs are not counted, the spec's
        MACs at most the source's."""
        if not self.opaque:
            return self.source == self.spec
        macs = self.source.macs is None or (self.spec.macs is not None and self.spec.macs <= self.source.macs)
        return (self.source.params, self.source.outputs) == (self.spec.params, self.spec.outputs) and macs

    @property
    def lines(self) -> int:
        return self.text.count("\n")


def import_model(target: str, input_shapes: list | tuple = (), arguments: str | None = None,
                 allow_opaque: bool = False, name: str | None = None) -> Imported:
    """Import ``target`` ('module:callable', 'path/file.py:callable' or 'model.onnx'), traced on
    inputs of ``input_shapes`` (typed shapes, spec.parse_input_text's, one per argument of
    forward; one 3x224x224 by default), the callable given ``arguments`` (JSON text, --args)."""
    if target.lower().endswith(".onnx"):
        from .onnx import import_onnx

        return import_onnx(target, allow_opaque=allow_opaque, name=name)
    import torch

    from ...layers import shape_text
    from ...layers.shapes import Steps
    from ...spec import parse_input_text
    from . import hf
    from .mapping import Mapper, is_helper
    from .trace import TRACE_BATCH, build_model, load_callable, parse_arguments, trace

    factory = load_callable(target)
    model, device = build_model(factory, parse_arguments(arguments))
    shapes = list(input_shapes) or [parse_input_text(DEFAULT_INPUT, Location("--input", 1, 1))]
    inputs = [(tuple(shape), torch.long if isinstance(shape, Steps) and len(shape) == 1 else torch.float32)
              for shape in shapes]
    with hf.traceable(model, len(shapes)):
        traced = trace(model, device, inputs, leaf=lambda module: is_helper(module) or hf.is_leaf(module),
                       buffers=hf.is_transformers(model))
    mapped = Mapper(traced.graph, model, shapes, allow_opaque).run()
    title = name or getattr(factory, "__name__", type(model).__name__)
    header = [f"imported by archcalc from {target}" + (f" with {arguments}" if arguments else "") +
              f", traced with torch.fx at {', '.join(map(shape_text, shapes))}"]
    # a transformers model as traced: its token inputs by name, its masks left out (on the meta device
    # they read values; FlopCounterMode counts the full T x S products with or without one)
    with hf.traceable(model, len(shapes)):
        macs = _source_macs(model, device, inputs, TRACE_BATCH)
    source = Side(sum(p.numel() for p in model.parameters()), macs, tuple(mapped_output_shapes(traced.graph)))
    imported = finish(mapped, title, header, source)
    imported.model = model
    return imported


def finish(mapped, title: str, header: list, source: Side) -> Imported:
    """Write the spec, read it back, analyze it and take its numbers."""
    from ...analysis import analyze
    from ...spec import loads
    from .concats import chain_concats

    chain_concats(mapped)
    inputs = {name: _yaml_shape(shape) for name, shape in mapped.inputs.items()}
    written = write_spec(mapped.entries, title, inputs, mapped.outputs, header=header)
    try:
        analysis = analyze(loads(written.text, f"<import of {title}>"))
    except ArchcalcError as exc:
        raise ArchcalcError(f"the imported spec does not read back: {exc}",
                            hint="a bug in archcalc's importer: please report it with the model") from None
    _check_pairing(mapped, analysis)
    totals = analysis.totals
    spec = Side(totals.params, totals.macs if source.macs is not None else None,
                tuple(tuple(analysis.output_shapes[name]) for name in analysis.spec.outputs))
    return Imported(written.text, written, mapped, analysis, source, spec, notes=list(mapped.notes))


def _check_pairing(mapped, analysis) -> None:
    """The spec expands to the importer's layers, one to one, in order (weights are copied so)."""
    names = [stats.layer.kind for stats in analysis.layers]
    kinds = [entry.kind for entry in mapped.entries]
    if [lookup_kind(kind) for kind in kinds] != names:
        raise ArchcalcError("the imported spec expands to other layers than were imported",
                            hint="a bug in archcalc's importer: please report it with the model")


def lookup_kind(kind: str) -> str:
    from ...layers import lookup

    return lookup(kind).kind


def _yaml_shape(shape) -> object:
    from ...layers.shapes import Steps

    if isinstance(shape, Steps):
        return {"steps": shape[0], "features": shape[1]} if len(shape) == 2 else {"steps": shape[0]}
    return list(shape)


def mapped_output_shapes(graph) -> list:
    """The traced shape of each output of the graph, per sample."""
    output = next(node for node in graph.graph.nodes if node.op == "output")
    shapes = []

    def collect(value):
        from torch import fx

        if isinstance(value, fx.Node):
            shapes.append(tuple(int(d) for d in value.meta["tensor_meta"].shape[1:]))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(output.args[0])
    return shapes


def _source_macs(model, device: str, inputs: list, batch: int) -> int | None:
    """Multiply-accumulates per sample as PyTorch's FlopCounterMode counts them (convolutions and
    matrix products, 2 FLOPs each), or None where it cannot run the model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .mapping import is_helper

    tensors = [torch.zeros((batch, *shape), dtype=dtype, device=device) for shape, dtype in inputs]
    # the parameters' requires_grad off while counting: under no_grad, a view of a parameter
    # (ViT's class token expanded over the batch) requires grad without a grad_fn, on which
    # FlopCounterMode's module tracker fails
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    recurrent = [module for module in model.modules() if type(module).__name__ == "Recurrent" and is_helper(module)]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        if device == "meta":
            for module in recurrent:  # an instance attribute: nn.Module calls it instead of the class's forward
                module.forward = _on_the_cpu(module)
        # oneDNN off: its fused LSTM kernel on the CPU is one call the counter does not see into
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "TF32 acceleration on top of oneDNN")  # mkldnn.flags' notice
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), \
                    FlopCounterMode(display=False) as counter:
                model(*tensors)
    except Exception:  # noqa: BLE001 - the count is a cross-check; its absence is said
        return None
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module in recurrent:
            module.__dict__.pop("forward", None)
    return counter.get_total_flops() // 2 // batch


def _on_the_cpu(module):
    """``module``'s forward run by an uninitialised copy on the CPU, on zeros of the inputs'
    shapes, its result moved back to the meta device: on meta archcalc's Recurrent runs its
    first step only (a long recurrence there costs minutes), on the CPU every step is counted."""
    import copy

    import torch

    copied = copy.deepcopy(module).to_empty(device="cpu")

    def forward(*inputs):
        output = copied(*(torch.zeros(x.shape, dtype=x.dtype) if isinstance(x, torch.Tensor) else x for x in inputs))
        return output.to("meta")

    return forward


def copy_weights(imported: Imported, source_state: dict, target_model) -> int:
    """The source's tensors (``source_state``: its state_dict, or an ONNX file's weights by name)
    into the spec's model (archcalc.backend.build), layer by layer: each layer's tensors in
    PyTorch's order, shapes checked; where the spec's module holds tensors the source does not
    name (a batchnorm's batch counter, absent from ONNX), they are paired by name. Returns the
    number of tensors copied."""
    import torch

    copied = 0
    for stats, tensors in zip(imported.analysis.layers, imported.mapped.tensors):
        if not tensors:
            continue
        target = list(target_model.submodule(stats.name).state_dict().items())
        if len(target) != len(tensors):
            target = [(key, mine) for key, mine in target if key.rsplit(".", 1)[-1] != "num_batches_tracked"]
        if len(target) != len(tensors):
            raise ArchcalcError(f"layer {stats.name}: {len(tensors)} source tensors for {len(target)} in the spec's "
                                f"module")
        with torch.no_grad():
            for (key, mine), name in zip(target, tensors):
                value = torch.as_tensor(source_state[name])
                if [d for d in value.shape if d != 1] == [d for d in mine.shape if d != 1]:
                    value = value.reshape(mine.shape)  # ViT's class token [1, 1, 768] is a parameter [1, 768]
                if tuple(mine.shape) != tuple(value.shape):
                    raise ArchcalcError(f"layer {stats.name}: {key} is {list(mine.shape)}, the source's {name} "
                                        f"{list(value.shape)}")
                mine.copy_(value)
                copied += 1
    return copied


def compare_outputs(imported: Imported, source_model, seed: int = 0, weights: dict | None = None) -> tuple[float, float]:
    """(largest absolute difference, largest absolute output) between the source's outputs and
    the spec's model's, with the source's weights copied in (``weights``: those of an ONNX file
    the source was exported to, onnx.onnx_weights, else its state_dict), on one random batch of
    2, both in eval mode on the CPU."""
    import torch

    from ...layers.shapes import Steps
    from .. import build
    from . import hf

    target = build(imported.analysis, seed=seed).eval()
    copy_weights(imported, hf.source_state(source_model) if weights is None else weights, target)
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 2, (2, *shape), generator=generator) if isinstance(shape, Steps) and len(shape) == 1
              else torch.randn((2, *shape), generator=generator)
              for shape in imported.analysis.input_shapes.values()]
    with torch.no_grad(), hf.named_inputs(source_model, len(inputs)):
        theirs = source_model.eval()(*inputs)
        ours = target(*inputs)
    theirs = [t for t in (theirs if isinstance(theirs, (tuple, list)) else (theirs,))]
    ours = list(ours if isinstance(ours, (tuple, list)) else (ours,))
    difference = max(float((a - b).abs().max()) for a, b in zip(theirs, ours))
    return difference, max(float(a.abs().max()) for a in theirs)


def output_difference(imported: Imported, source_model, seed: int = 0, weights: dict | None = None) -> float:
    """The largest absolute difference of ``compare_outputs``."""
    return compare_outputs(imported, source_model, seed, weights)[0]


__all__ = ["Imported", "Side", "compare_outputs", "copy_weights", "import_model", "output_difference"]
