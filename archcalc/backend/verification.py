"""``archcalc run``: compile a spec, run it, and check PyTorch against the analyzer.

Per layer: the output shape and the parameter count. On a real device it also times the
forward pass (and forward + backward with ``train``) after warm-up, and on CUDA reads the
peak memory next to the analyzer's prediction.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

from ..analysis import Analysis
from ..choices import MODEL_DTYPES
from ..errors import ArchcalcError, SpecError, UsageError
from ..gcpause import paused_gc
from ..layers import Outputs, shape_text
from ..units import human_bytes
from . import require_torch
from .graph import Network
from .plan import make_plan
from .tensors import check_tensor_sizes, sample_inputs

TORCH_DTYPES = MODEL_DTYPES
DEFAULT_ITERATIONS = {"cuda": 20, "cpu": 0, "meta": 0}  # cpu times only when asked
WARMUP = 3


@dataclass(frozen=True)
class LayerCheck:
    name: str
    kind: str
    predicted_shape: tuple
    actual_shape: tuple | None      # None: PyTorch never got there
    predicted_params: int
    actual_params: int

    @property
    def ok(self) -> bool:
        return self.actual_shape == tuple(self.predicted_shape) and self.actual_params == self.predicted_params


@dataclass(frozen=True)
class Timing:
    mode: str                       # "forward" or "train" (forward + backward)
    iterations: int
    seconds: float                  # the timed iterations together, after warm-up
    batch: int
    peak_bytes: int | None = None   # torch.cuda.max_memory_allocated over the timed iterations
    predicted_bytes: int | None = None

    @property
    def samples_per_second(self) -> float:
        return self.batch * self.iterations / self.seconds

    @property
    def milliseconds(self) -> float:
        """Per iteration (one batch)."""
        return 1000 * self.seconds / self.iterations

    @property
    def memory_ratio(self) -> float | None:
        return self.peak_bytes / self.predicted_bytes if self.peak_bytes and self.predicted_bytes else None


@dataclass(frozen=True)
class Verification:
    analysis: Analysis
    device: str                     # cuda / cpu / meta
    device_name: str                # "NVIDIA H100 80GB HBM3", "cpu", "meta"
    dtype: str
    checks: tuple
    actual_params: int
    actual_trainable: int
    failure: str | None = None      # PyTorch refused a layer: "layer X: message"
    timings: tuple = ()
    outputs: dict = field(default_factory=dict)   # output name -> values (with --values)
    notes: tuple = ()

    @property
    def disagreements(self) -> list[str]:
        """One line per number on which PyTorch and the analyzer differ."""
        lines = []
        for check in self.checks:
            if check.actual_shape is not None and check.actual_shape != tuple(check.predicted_shape):
                lines.append(f"layer {check.name}: output shape: analyzer {shape_text(check.predicted_shape)}, "
                             f"PyTorch {shape_text(check.actual_shape)}")
            if check.actual_params != check.predicted_params:
                lines.append(f"layer {check.name}: parameters: analyzer {check.predicted_params:,}, "
                             f"PyTorch {check.actual_params:,}")
        totals = self.analysis.totals
        for what, predicted, actual in (("parameters", totals.params, self.actual_params),
                                        ("trainable parameters", totals.trainable_params, self.actual_trainable)):
            if predicted != actual:
                lines.append(f"total {what}: analyzer {predicted:,}, PyTorch {actual:,}")
        if self.failure:
            lines.append(self.failure)
        return lines

    @property
    def ok(self) -> bool:
        return not self.disagreements


@paused_gc
def verify(analysis: Analysis, *, device: str = "auto", train: bool = False, iterations: int | None = None,
           warmup: int = WARMUP, values=None, seed: int = 0, progress=None) -> Verification:
    """Build the analyzed spec in PyTorch on ``device`` (auto: CUDA if present, else CPU; meta:
    shapes and counts without memory), feed a random batch (or ``values``, one sample: a flat or
    nested list filling the input) and compare every layer with the analyzer.

    ``iterations`` timed runs follow ``warmup`` untimed ones (default 20 on CUDA, none elsewhere),
    with ``train`` adding forward + backward; ``progress(description, done, total)`` is called
    as they go.
    """
    torch = require_torch()
    if analysis.dtype not in TORCH_DTYPES:
        raise UsageError("--dtype", analysis.dtype, f"PyTorch cannot run a network in {analysis.dtype} "
                         "(here it only sizes memory)", f"{', '.join(TORCH_DTYPES)} to run")
    target = _device(torch, device)
    batch = analysis.batch
    if values is not None and target.type == "meta":
        raise UsageError("--values", values, "needs a device that computes; the meta device only tracks shapes",
                         hint="use --device cpu")
    if values is not None and batch != 1:
        raise UsageError("--values", values, f"one sample, but --batch is {batch}", hint="drop --batch")
    plan = make_plan(analysis)
    dtype = getattr(torch, analysis.dtype)
    check_tensor_sizes(torch, plan, batch, dtype)
    if target.type == "cpu":
        _check_fits(analysis, train)
    count = DEFAULT_ITERATIONS[target.type] if iterations is None else iterations
    if train and count and target.type != "meta" and analysis.totals.trainable_params:
        _check_trainable_at(plan, batch)
    torch.manual_seed(seed)
    try:
        with torch.device(target):
            model = Network(plan).to(dtype)
        inputs = sample_inputs(torch, plan, batch, dtype, target, values)
    except torch.cuda.OutOfMemoryError:
        raise ArchcalcError(f"the device ran out of memory building the network and its batch of {batch:,} "
                            f"(the analyzer predicts {human_bytes(analysis.totals.forward_bytes)})",
                            hint="lower --batch, or --device meta to check shapes and counts only") from None
    checks, outputs, failure = _run_checks(torch, model, plan, inputs, keep_outputs=values is not None)
    parameters = list(model.parameters())
    notes = []
    if values is not None:
        random = [step.name for step in plan.steps if step.stats.params and "preset" not in step.recipe.helpers()]
        if random:
            notes.append(f"random weights (seed {seed}) in {', '.join(random)}: give them 'weights' to "
                         f"reproduce worked examples")
    timings = ()
    if count and target.type == "meta":
        notes.append("no timing on the meta device: it computes nothing")
    elif count and failure is None:
        modes = ("forward", "train") if train else ("forward",)
        if train and not any(p.requires_grad for p in parameters):
            notes.append("no training run: no parameter is trainable")
            modes = ("forward",)
        timings = tuple(replace(measure(model, inputs, mode=mode, iterations=count, warmup=warmup,
                                        progress=progress),
                                predicted_bytes=predicted_peak(analysis, mode, target.type))
                        for mode in modes)
    return Verification(analysis, target.type, _device_name(torch, target), analysis.dtype, tuple(checks),
                        sum(p.numel() for p in parameters),
                        sum(p.numel() for p in parameters if p.requires_grad),
                        failure, timings, outputs, tuple(notes))


def parse_values(text: str, shape: tuple) -> list:
    """--values: YAML/JSON numbers, flat or nested, filling one sample of ``shape``."""
    from ..layers.values import check_count, numbers
    from ..spec.source import load_value

    layout = "".join(f"[{size}]" for size in shape)
    accepted = f"the numbers of one sample, flat or nested as {layout}"
    try:
        values = numbers(load_value(text))  # a spec's limits: size, nesting depth, what aliases expand to
        check_count(values, tuple(shape), "--values", layout, "the input")
    except SpecError as exc:
        raise UsageError("--values", text, exc.message.removeprefix("--values "), accepted,
                         hint=exc.hint) from None
    return _flat(values)


def _device(torch, name: str):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device", name, "cuda, but PyTorch sees no CUDA GPU here",
                         "cpu here, or meta for shapes and counts only")
    return torch.device(name)


def _device_name(torch, device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def predicted_peak(analysis: Analysis, mode: str, device: str) -> int | None:
    """The memory schedule's peak for a timed pass: inference (forward), or forward + backward
    with no optimizer step (train: SGD keeps no state, and its step frees nothing); None where
    the schedule will not replay the spec (more operations than it replays)."""
    from ..analysis.schedule import schedule

    try:
        return schedule(analysis, training=mode == "train", optimizer="sgd",
                        device="cuda" if device == "cuda" else "cpu").peak()
    except SpecError:
        return None


def _check_fits(analysis: Analysis, train: bool) -> None:
    """Refuse a CPU run the machine's available memory cannot hold (the OS would kill it silently)."""
    free = _available_memory()
    if free is None:
        return
    need = predicted_peak(analysis, "train" if train else "forward", "cpu")
    source = f"the memory schedule's {'training' if train else 'inference'} peak"
    if need is None:   # too many operations to replay: the course's rule (every output kept; x2 training)
        need = analysis.totals.training_bytes_estimate if train else analysis.totals.forward_bytes
        source = "the course's rule: the memory schedule does not replay this many operations"
    if need > free:
        raise ArchcalcError(
            f"this run needs about {human_bytes(need)} at batch {analysis.batch} ({source}), "
            f"but only {human_bytes(free)} is available",
            hint="--device meta checks every shape and count without memory; or lower --batch")


def _check_trainable_at(plan, batch: int) -> None:
    """Refuse a training run at a batch PyTorch cannot train a layer at (Layer.training_batch),
    before anything is built."""
    for step in plan.steps:
        stats = step.stats
        need = stats.layer.training_batch(stats.input_shape)
        if batch < need:
            raise SpecError(f"PyTorch trains {stats.kind} on {shape_text(stats.input_shape)} only at batch {need} "
                            f"or more, but --batch is {batch}",
                            hint=f"use --batch {need}, or drop --train", location=stats.node.location,
                            layer=stats.name)


def _available_memory() -> int | None:
    """Bytes the OS can give without swapping: Linux's MemAvailable, else the free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _run_checks(torch, model: Network, plan, inputs, keep_outputs: bool) -> tuple:
    """(checks, the output values if ``keep_outputs``, failure): one forward pass in eval mode."""
    shapes = {}

    def observe(name, value):  # a split's value is a tuple of tensors
        shapes[name] = (Outputs(tuple(part.shape[1:]) for part in value) if isinstance(value, tuple)
                        else tuple(value.shape[1:]))

    failure = None
    model.eval()
    try:
        with torch.inference_mode():
            results = model.run(*inputs, observe=observe)
    except torch.cuda.OutOfMemoryError:
        raise ArchcalcError("the device ran out of memory during the forward pass",
                            hint="lower --batch, or --device meta to check shapes and counts only") from None
    except Exception as exc:  # noqa: BLE001 - any refusal by PyTorch is a finding to report, not a crash
        stuck = plan.steps[len(shapes)]
        failure = f"layer {stuck.name}: PyTorch refused it: {str(exc).strip().splitlines()[0]}"
        results = None
    checks = [LayerCheck(step.name, _kind(step.stats.layer), _sizes(step.stats.output_shape), shapes.get(step.name),
                         step.stats.params, _own_params(model, step)) for step in plan.steps]
    outputs = {}
    if results is not None and keep_outputs:
        results = results if isinstance(results, tuple) else (results,)
        outputs = {name: result[0].float().tolist() for name, result in zip(plan.outputs, results)}
    return checks, outputs, failure


def _sizes(shape) -> tuple:
    """Plain sizes, as PyTorch reports them: one tuple, or an Outputs of one per output (split)."""
    return Outputs(map(tuple, shape)) if isinstance(shape, Outputs) else tuple(shape)


def _own_params(model: Network, step) -> int:
    """The parameters of the step's module that are not those of the layer it shares (the very
    module, or tensors tied to it: counted there, once, as model.parameters() does)."""
    module = model.submodule(step.name)
    theirs = set()
    if step.stats.shares is not None:
        theirs = {id(parameter) for parameter in model.submodule(step.stats.shares).parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in theirs)


def measure(model, inputs: tuple, *, mode: str, iterations: int, warmup: int = WARMUP,
            progress=None) -> Timing:
    """Time ``iterations`` passes of any module after ``warmup`` untimed ones, synchronised on
    CUDA, with the peak memory they reached there. ``mode``: forward (inference) or train
    (forward + backward of the outputs' sum)."""
    import torch

    device = inputs[0].device
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)

    def forward():
        with torch.inference_mode():
            model(*inputs)

    def train():
        outputs = model(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        sum(output.float().sum() for output in outputs).backward()
        model.zero_grad(set_to_none=True)

    step = train if mode == "train" else forward
    model.train(mode == "train")
    total = warmup + iterations
    try:
        for done in range(total):
            if done == warmup:
                sync()
                if cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
            step()
            if progress:
                progress(mode, done + 1, total)
        sync()
        seconds = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        raise ArchcalcError(f"the device ran out of memory in the {mode} runs at batch {inputs[0].shape[0]}",
                            hint="lower --batch") from None
    finally:
        model.eval()
    return Timing(mode, iterations, seconds, inputs[0].shape[0],
                  torch.cuda.max_memory_allocated(device) if cuda else None)


def _kind(layer) -> str:
    """'conv relu': the kind and its activation attribute, as the inspect table shows them."""
    return layer.kind + (f" {layer.activation}" if layer.activation else "")


def _flat(values) -> list:
    return [number for item in values for number in (_flat(item) if isinstance(item, tuple) else (item,))]
