"""``archcalc export``: the network as readable PyTorch source that needs only torch.

The source is printed from the same plan the backend builds and verifies (see layers/recipe.py),
and ``export_checked`` executes it on the meta device before anything is written.
"""
from __future__ import annotations

import inspect
import textwrap
from collections import Counter

from .. import __version__
from ..gcpause import paused_gc
from ..layers import shape_text
from . import modules
from .plan import Plan, make_plan
from .tensors import check_tensor_sizes, sample_inputs

INDENT = "    "


@paused_gc
def export_source(source, **analyze_options) -> str:
    """Python source of one nn.Module class, constructible with no arguments."""
    return render(make_plan(source, **analyze_options))


def render(plan: Plan) -> str:
    helpers = sorted(set().union(*(step.recipe.helpers() for step in plan.steps),
                                 {"tie"} if any(step.ties is not None for step in plan.steps) else ()))
    blocks = [inspect.getsource(modules.HELPERS[name]).rstrip() for name in helpers] + [_class(plan)]
    return _header(plan) + "\nimport torch\nfrom torch import nn\n\n\n" + "\n\n\n".join(blocks) + "\n"


@paused_gc
def export_checked(plan: Plan) -> str:
    """The source, after building it on the meta device and comparing its parameter count and
    output shapes with the analyzer (an ArchcalcError if they differ: a bug in the backend).

    The check runs in eval mode, as a user would first run an exported model: in training mode
    PyTorch refuses a batchnorm over a flat vector at this batch of 1."""
    import torch

    from ..errors import ArchcalcError

    check_tensor_sizes(torch, plan, 1, torch.float32)
    source = render(plan)
    namespace: dict = {}
    exec(compile(source, f"<export of {plan.analysis.spec.path}>", "exec"), namespace)  # noqa: S102 (our own code)
    with torch.device("meta"):  # the class takes no device: build it under this default
        model = namespace[plan.class_name]().eval()
    inputs = sample_inputs(torch, plan, 1, getattr(torch, plan.analysis.dtype), "meta", None)  # ids stay integers
    try:
        with torch.inference_mode():
            outputs = model(*inputs)
    except Exception as exc:  # noqa: BLE001 - a refusal by PyTorch is reported, not a crash
        raise ArchcalcError(f"the exported code fails on PyTorch's meta device: "
                            f"{str(exc).strip().splitlines()[0]}") from None
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    params = sum(p.numel() for p in model.parameters())
    shapes = [tuple(output.shape[1:]) for output in outputs]
    expected = [tuple(shape) for shape in _output_shapes(plan)]
    if params != plan.analysis.totals.params or shapes != expected:
        raise ArchcalcError(f"the exported code disagrees with the analyzer: {params:,} parameters and "
                            f"outputs {shapes}, expected {plan.analysis.totals.params:,} and {expected}")
    return source


def _output_shapes(plan: Plan) -> list:
    """The analyzer's shape of each output, in forward's order."""
    shapes = plan.analysis.output_shapes
    return [shapes[name] for name in plan.outputs]


def _header(plan: Plan) -> str:
    spec, analysis = plan.analysis.spec, plan.analysis
    lines = [f"{spec.name}: PyTorch code exported by archcalc {__version__} from {spec.path}.", ""]
    if spec.description:
        lines += [*textwrap.wrap(" ".join(spec.description.split()), 96), ""]
    inputs = ", ".join(f"{name} {shape_text(shape)}" for name, shape in plan.inputs.items())
    outputs = ", ".join(f"{name} {shape_text(shape)}" for name, shape in zip(plan.outputs, _output_shapes(plan)))
    arguments = ["x"] if len(plan.inputs) == 1 else list(plan.input_variables)
    shapes = ", ".join(f"{argument}: ({', '.join(map(str, ('N', *shape)))})"
                       for argument, shape in zip(arguments, plan.inputs.values()))
    lines += [f"Per sample, channels first: {inputs} -> {outputs}.",
              f"{analysis.totals.params:,} parameters. Needs only torch:", "",
              f"    model = {plan.class_name}()",
              f"    y = model({', '.join(arguments)})  # {shapes}, batch first" +
              ("" if analysis.dtype == "float32" else f", {analysis.dtype}")]
    text = "\n".join(escaped(line) for line in lines).replace('"""', '\\"\\"\\"')  # spec text, in a docstring
    return f'"""{text}\n"""\n'


def _class(plan: Plan) -> str:
    lines = [f"class {plan.class_name}(nn.Module):",
             f"{INDENT}def __init__(self):", f"{INDENT * 2}super().__init__()"]
    owning = [step for step in plan.steps if step.shares is None]  # a shared module is made once
    for step in owning:
        named = "" if step.attribute == step.name else f"  # {escaped(step.name)}"
        lines.append(f"{INDENT * 2}self.{step.attribute} = {step.recipe.source()}{named}")
        if step.ties is not None:
            lines.append(f"{INDENT * 2}tie(self.{step.attribute}, self.{step.ties})  # shares {escaped(step.stats.shares)}")
    for step in owning:
        if not step.stats.node.trainable:
            lines.append(f"{INDENT * 2}self.{step.attribute}.requires_grad_(False)  # trainable: false")
        elif step.stats.node.frozen:
            lines += [f"{INDENT * 2}self.{step.attribute}.get_parameter({path!r}).requires_grad_(False)  # freeze"
                      for path in _frozen_paths(step)]
    if plan.analysis.dtype != "float32":  # archcalc export --dtype: the weights in that dtype
        lines.append(f"{INDENT * 2}self.to(torch.{plan.analysis.dtype})")
    variables = _variables(plan)
    arguments = ", ".join(variables[name] for name in plan.inputs)
    lines += ["", f"{INDENT}def forward(self, {arguments}):"]
    for step in plan.steps:
        reads = ", ".join(variables[name] for name in step.reads)
        assigned = ", ".join(variables[name] for name in step.stats.node.outputs)  # a split: 'a, b = ...'
        lines.append(f"{INDENT * 2}{assigned} = self.{step.module}({reads})")
    lines.append(f"{INDENT * 2}return {', '.join(variables[name] for name in plan.outputs)}")
    return "\n".join(lines)


def _frozen_paths(step) -> list:
    """The paths of the frozen parameters inside the step's module (built on the meta device,
    which allocates nothing, to read PyTorch's own names)."""
    import torch

    with torch.device("meta"):
        module = modules.construct(step.recipe)
    return [path for path, _ in modules.frozen_parameters(module, step.stats.node.frozen)]


def escaped(text: str) -> str:
    """Spec text made safe in a comment or a docstring line, and still readable: a backslash and
    every unprintable character (newline, NUL, bidirectional overrides, lone surrogates) as its
    Python escape, 'a\\nb' for a name holding a newline; letters of any script kept as they are."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def _variables(plan: Plan) -> dict:
    """Spec name -> local variable: 'x' for a value read once, by the very next statement (a
    chain reads as x = self.conv1(x)); its own name when a branch reads it later."""
    uses = Counter(name for step in plan.steps for name in step.reads) + Counter(plan.outputs)
    variables = dict(zip(plan.inputs, plan.input_variables))
    variables.update((step.name, step.attribute) for step in plan.steps)
    variables.update(pair for step in plan.steps for pair in zip(step.stats.node.outputs, step.parts))
    single_input = next(iter(plan.inputs)) if len(plan.inputs) == 1 else None
    values = [single_input, *(step.name for step in plan.steps)]
    following = [*(step.reads for step in plan.steps), plan.outputs if len(plan.outputs) == 1 else ()]
    for name, next_reads in zip(values, following):
        if name is not None and uses[name] == 1 and name in next_reads:
            variables[name] = "x"
    return variables
