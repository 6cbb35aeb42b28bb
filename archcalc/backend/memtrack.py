"""Measured memory without a GPU: the bytes of every live tensor storage while a model runs.

``LiveBytes`` is a TorchDispatchMode, the one tracker of live bytes (``run --memory`` here,
``run --nproc``'s ranks in backend/distributed.py, the benchmarks): every aten operation run
under it (forward, the autograd engine's backward operations, the optimizer's, DDP's and FSDP2's
copies) passes through ``__torch_dispatch__``, which registers each output's storage once, with a
weak reference whose callback subtracts its bytes when PyTorch frees it. Views share their base's
storage and in-place operations return it, so neither counts twice. A wrapper subclass (DTensor,
FSDP2's sharded parameters) counts through its inner tensors. Tensors that exist before
(parameters, buffers, the input batch, optimizer state) are registered with ``track``.

The sizes are read again after every operation, not remembered from when a storage was first
seen: FSDP2 frees and re-allocates its gathered parameters by resizing their storages in place
(``resize_(0)``), which no operation returns, and an out= operation may grow a storage it returns.

Why not torch.distributed._tools.mem_tracker.MemTracker: it works on CPU with torch 2.13
(tried on LeNet-5) and the benchmark runs it beside this tracker, but it is a private module
(``_tools``) that reports per module and not per phase, and it lives in the distributed
package, which not every build ships.

What it cannot see: memory a kernel allocates and frees inside one operation (a oneDNN or
cuDNN workspace, an LSTM kernel's scratch), buffers a C++ component allocates outside the
dispatcher (none of DDP's or FSDP2's on CPU, as the distributed tests show), and the allocator's
rounding. On CUDA the backend reads torch.cuda.max_memory_allocated for those.
"""
from __future__ import annotations

import contextlib
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass
from torch.utils._pytree import tree_flatten

from ..choices import MIXED_PRECISION, OPTIMIZERS


class LiveBytes(TorchDispatchMode):
    """Live bytes now (``current``), their maximum since it was made (``peak``) and, per phase,
    the maximum reached inside it (``peaks``, in the order the phases ran). ``marks`` records
    (label, live bytes) whenever ``mark`` is called (after each layer, say).

    ``current`` is exact between operations too: a storage PyTorch frees takes its bytes off at
    once (its weak reference's callback, with the size last read)."""

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self.peaks: dict[str, int] = {}
        self.marks: list[tuple[str, int]] = []
        self._phase: str | None = None
        self._storages: dict[int, list] = {}   # id(storage) -> [weak reference, bytes as last read]

    def track(self, *tensors) -> None:
        """Count tensors that already exist (each storage once)."""
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                self._add(tensor)
        self._measure()

    def mark(self, label: str) -> None:
        self.marks.append((label, self.current))

    @contextlib.contextmanager
    def phase(self, name: str):
        """Record the peak reached while the block runs (starting from what is live at its start)."""
        self._phase = name
        self.peaks[name] = self.current
        try:
            yield self
        finally:
            self._phase = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor):
                self._add(value)
        self._measure()
        return result

    def _add(self, tensor: torch.Tensor) -> None:
        if is_traceable_wrapper_subclass(tensor):
            for name in tensor.__tensor_flatten__()[0]:
                inner = getattr(tensor, name)
                if isinstance(inner, torch.Tensor):
                    self._add(inner)
            return
        if tensor.is_sparse or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        known = self._storages.get(key)
        if known is None or known[0]() is not storage:
            self._storages[key] = [weakref.ref(storage, self._freed(key)), 0]

    def _freed(self, key: int):
        def callback(reference):
            entry = self._storages.get(key)
            if entry is not None and entry[0] is reference:
                del self._storages[key]
                self.current -= entry[1]
        return callback

    def _measure(self) -> None:
        """Read every live storage's size again; the peaks."""
        total = 0
        for entry in list(self._storages.values()):
            storage = entry[0]()
            if storage is not None:
                entry[1] = storage.nbytes()
                total += entry[1]
        self.current = total
        self.peak = max(self.peak, total)
        if self._phase is not None:
            self.peaks[self._phase] = max(self.peaks[self._phase], total)


def measure(network, inputs: tuple, *, train: bool = False, optimizer: str = "sgd",
            mixed_precision: str | None = None) -> LiveBytes:
    """Run ``network`` under a LiveBytes tracker and return it, its phase peaks filled in.

    Inference: eval mode, no_grad, one forward pass: phase "inference".
    Training: train mode; one untracked step creates the optimizer's state, then the second step
    is measured: zero_grad(set_to_none=True), "forward" (to the loss, the sum of the outputs),
    "backward", "step". What is live when a phase starts counts in its peak: the parameters,
    buffers, the input batch and (from the first step) the optimizer state. ``mixed_precision``
    (bf16, fp16): the forward pass and the loss run under torch.autocast on CPU, as its recipe
    has it (the backward and the step outside it).
    """
    tracker = LiveBytes()
    autocast = (lambda: torch.autocast("cpu", dtype=getattr(torch, MIXED_PRECISION[mixed_precision]))) \
        if mixed_precision else contextlib.nullcontext
    if not train:
        network.eval()
        tracker.track(*network.parameters(), *network.buffers(), *inputs)
        with torch.no_grad(), tracker, tracker.phase("inference"), autocast():
            network.run(*inputs, observe=lambda name, _: tracker.mark(name))
        return tracker
    name, options = OPTIMIZERS[optimizer]
    trained = [p for p in network.parameters() if p.requires_grad]
    if not trained:
        from ..errors import SpecError
        raise SpecError("no parameter is trainable: there is no training step to measure", hint="drop --train")
    step = getattr(torch.optim, name)(trained, lr=1e-3, **options)
    network.train()

    def iteration(tracked: LiveBytes | None):
        step.zero_grad(set_to_none=True)
        phase = tracker.phase if tracked else (lambda _: contextlib.nullcontext())
        with phase("forward"), autocast():
            outputs = network.run(*inputs, observe=(lambda name, _: tracker.mark(name)) if tracked else None)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            loss = sum(output.sum() for output in outputs)
        with phase("backward"):
            loss.backward()
        with phase("step"):
            step.step()

    iteration(None)
    tracker.track(*network.parameters(), *network.buffers(), *inputs,
                  *(value for state in step.state.values() for value in state.values()))
    with tracker:
        iteration(tracker)
    return tracker


def measured_peaks(analysis, *, train: bool = False, optimizer: str = "sgd", seed: int = 0,
                   mixed_precision: str | None = None, checkpoint: tuple = ()) -> dict:
    """{phase: peak live bytes} of the analyzed spec's PyTorch model on CPU (see ``measure``);
    ``checkpoint``: runs of layers (their names) run under torch.utils.checkpoint (graph.Network)."""
    from .graph import Network
    from .plan import make_plan
    from .verification import _check_fits, sample_inputs

    _check_fits(analysis, train)
    plan = make_plan(analysis)
    torch.manual_seed(seed)
    dtype = getattr(torch, analysis.dtype)
    network = Network(plan, checkpoint=checkpoint).to(dtype)
    inputs = sample_inputs(torch, plan, analysis.batch, dtype, "cpu", None)
    try:
        return measure(network, inputs, train=train, optimizer=optimizer, mixed_precision=mixed_precision).peaks
    except RuntimeError as exc:   # a kernel this CPU's PyTorch lacks (oneDNN's LSTM training in float16)
        from ..errors import SpecError
        raise SpecError(f"PyTorch could not run the model to measure it: {str(exc).splitlines()[0]}",
                        hint="its kernel has no version for this dtype on this CPU: try --mixed-precision bf16, "
                             "or leave it out") from None
