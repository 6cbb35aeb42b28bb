"""Getting a PyTorch model and its graph: import the callable, build the model, trace it.

The tracer is torch.fx's symbolic tracer, not torch.export. fx keeps what a spec is written
from: every torch.nn layer stays one call of that module, with its qualified path
(``layer1.0.conv1``) and its object (so ``nn.Conv2d``'s kernel, stride and groups are read as
they are), and every function call inside a model's own modules carries the stack of modules it
ran in (``nn_module_stack``), which names it and finds repeated blocks. torch.export lowers
everything to ATen operators (a conv becomes ``aten.convolution`` over lifted weight inputs), so
the modules would have to be guessed back from patterns. fx needs no compilation, runs on the
meta device (a 7B model costs nothing), and takes well under a second for ResNet-50. Its limit:
Python control flow that depends on tensor values cannot be traced; such a model is refused with
fx's own reason.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ...errors import ArchcalcError, UsageError

TRACE_BATCH = 2  # a batch of 2, not 1: an operation that mixes the batch axis in shows as such


@dataclass
class Traced:
    model: object        # the nn.Module as built (on the meta device where it could be)
    graph: object        # its torch.fx.GraphModule, every node's output shape propagated
    device: str          # "meta" or "cpu"


def load_callable(target: str):
    """The callable ``target`` names: 'package.module:callable' (imported) or
    'path/to/file.py:callable' (loaded from the file); a dotted callable reads attributes
    ('torchvision.models:resnet50', 'model.py:Net')."""
    module_name, colon, attribute = target.rpartition(":")
    if not colon or not module_name or not attribute:
        raise UsageError("MODEL", target, "names no callable",
                         hint="write MODULE:CALLABLE (torchvision.models:resnet50), path/to/model.py:CALLABLE, "
                              "or give an .onnx file")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError("MODEL", target, f"{module_name} is not a file")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UsageError("MODEL", target, f"cannot load {module_name} as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules.setdefault(path.stem, module)  # dataclasses and pickles look their module up
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is reported, not a crash
        raise ArchcalcError(f"importing {module_name} failed: {type(exc).__name__}: {_first_line(exc)}",
                            hint="the module must import in this Python (check PYTHONPATH and its dependencies)") \
            from None
    found = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UsageError("MODEL", target, f"{module_name} has no {attribute}",
                             hint=_closest_attribute(part, found))
        found = getattr(found, part)
    if not callable(found):
        raise UsageError("MODEL", target, f"{attribute} is not callable")
    return found


def _closest_attribute(name: str, module) -> str:
    from ...layers.arguments import closest

    names = [n for n in dir(module) if not n.startswith("_")]
    return closest(name, names) if names else ""


def parse_arguments(text: str | None) -> dict:
    """--args: a JSON object of keyword arguments for the callable."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError("--args", text, f"is not JSON: {exc.msg} at character {exc.pos}",
                         hint='--args takes a JSON object, e.g. \'{"num_classes": 10}\'') from None
    if not isinstance(value, dict):
        raise UsageError("--args", text, "must be a JSON object of keyword arguments",
                         hint='e.g. --args \'{"num_classes": 10}\'')
    return value


def build_model(factory, arguments: dict):
    """The model ``factory(**arguments)`` makes, in eval mode, built on the meta device (no memory
    for the weights) or, where its constructor cannot run there (it reads a value), on the CPU."""
    import torch
    from torch import nn

    failure = None
    for device, context in (("meta", torch.device("meta")), ("meta", _weights_on_meta()), ("cpu", torch.device("cpu"))):
        try:
            with context:
                model = factory(**arguments)
        except Exception as exc:  # noqa: BLE001 - the user's constructor
            failure = exc
            continue
        if not isinstance(model, nn.Module):
            raise ArchcalcError(f"the callable returned a {type(model).__name__}, not a torch.nn.Module",
                                hint="name a model class or a function that returns a model")
        return model.eval(), device
    raise ArchcalcError(f"building the model failed: {type(failure).__name__}: {_first_line(failure)}",
                        hint="check --args against the callable's parameters")


@contextlib.contextmanager
def _weights_on_meta():
    """Every parameter and buffer moved to the meta device as its module registers it, for a
    constructor that computes with tensors (RegNet's widths: .tolist() cannot read a meta tensor):
    each weight exists on the CPU only while it is initialised."""
    from torch import nn

    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module, name, tensor, persistent=True):
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def trace(model, device: str, inputs: list, leaf=None, buffers: bool = False) -> Traced:
    """torch.fx's graph of ``model`` with the output shape of every node, for a batch of
    TRACE_BATCH samples of each (shape, dtype) in ``inputs``. A module for which ``leaf(module)``
    holds stays one call, as torch.nn's own do (archcalc's helpers: mapping.is_helper). ``buffers``:
    the buffers forward reads are graph values (get_attr), not constants baked in (transformers
    slice theirs by the input's length: BERT's position_ids)."""
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    class Tracer(fx.Tracer):
        proxy_buffer_attributes = buffers

        def is_leaf_module(self, module, qualified_name: str) -> bool:
            return (leaf is not None and leaf(module)) or super().is_leaf_module(module, qualified_name)

    try:
        graph = fx.GraphModule(model, Tracer().trace(model), type(model).__name__)
    except Exception as exc:  # noqa: BLE001 - fx's refusal of the user's forward
        raise ArchcalcError(f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: "
                            f"{_first_line(exc)}",
                            hint="fx traces forward with symbolic values: control flow that depends on "
                                 "tensor values is not traceable; export the model to ONNX and import the "
                                 ".onnx file instead") from None
    tensors = [torch.zeros((TRACE_BATCH, *shape), dtype=dtype, device=device) if not dtype.is_floating_point
               else torch.randn((TRACE_BATCH, *shape), dtype=dtype, device=device) for shape, dtype in inputs]
    try:  # ShapeProp prints the traceback of a failing node itself: the error below says it in one line
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(graph).propagate(*tensors)
    except Exception as exc:  # noqa: BLE001
        raise ArchcalcError(f"running {type(model).__name__} on an input of "
                            f"{', '.join('x'.join(map(str, shape)) for shape, _ in inputs)} failed: "
                            f"{type(exc).__name__}: {_first_line(exc)}",
                            hint="give the input the model expects with --input") from None
    return Traced(model, graph, device)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
