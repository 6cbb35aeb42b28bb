"""``archcalc run SPEC --nproc N --shard ddp|fsdp``: the spec trained on N processes with
torch.distributed, each rank's peak live bytes and collectives measured, beside the prediction
of analysis/sharding.py.

The launcher starts N copies of this module (``python -m archcalc.backend.distributed OPTIONS``)
with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so
``torchrun --nproc-per-node N -m archcalc.backend.distributed OPTIONS`` runs the same workers.
Each rank:
- joins the process group (gloo on CPU, nccl on CUDA, one GPU per local rank);
- builds the spec's network with the same seed, then wraps it: DDP (DistributedDataParallel,
  default buckets), or FSDP2 (``fully_shard`` on each unit of analysis/sharding.units, then on
  the root), in the spec's dtype;
- trains two steps on its own random batch of batch/N samples (the loss: the sum of the
  outputs): the first creates the optimizer state (and DDP rebuilds its buckets in the second's
  forward), the second is measured: live tensor bytes (backend/memtrack.py) from its start to
  after the optimizer step, and the payload of every collective (DDP's buckets through a comm
  hook, FSDP2's all-gathers and reduce-scatters through its custom-collective hooks, each
  on gloo returning once its worker thread has let go of their tensors: ``_settled``);
- under FSDP, records each parameter's and gradient's local shard (``to_local()``) size;
- writes its result as JSON beside the options, for the launcher.
OPTIONS may also hold a list of runs: each rank runs them one after the other on one process
group and writes a list (``run_each``: a benchmark's runs start their processes once).
The launcher stops every rank when one fails or the time runs out, and waits for each: no
process outlives the command.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..choices import OPTIMIZERS
from ..errors import ArchcalcError, SpecError

SHARDS = ("ddp", "fsdp")
ADDRESS = "127.0.0.1"


class LaunchError(ArchcalcError):
    """A distributed run that could not start or did not finish (exit code 2)."""


# --- the launcher ------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((ADDRESS, 0))
        return probe.getsockname()[1]


def check_port(port: int) -> None:
    """Refuse a port another process holds: the rendezvous would hang or fail obscurely."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ADDRESS, port))
        except OSError:
            raise LaunchError(f"port {port} is already taken on {ADDRESS}",
                              hint="leave out --master-port: a free port is chosen") from None


@dataclass(frozen=True)
class RankResult:
    rank: int
    peak_bytes: int               # live bytes, most during the measured step
    start_bytes: int              # live when it began: parameters, optimizer state, the batch
    collectives: dict             # {'all-reduce': payload bytes, ...} of the measured step
    shards: list                  # fsdp: [[global shape, local rows], ...] of every parameter
    gradient_shards: list
    seconds: float


def launch(runs: list[dict], nproc: int, *, port: int | None = None,
           timeout: float = 300.0) -> list[list[RankResult]]:
    """Run ``nproc`` workers on ``runs`` (options, see ``worker``; the workers run them one after
    the other on one process group) and return, per run, the results by rank.

    A rank that exits with an error, or a run longer than ``timeout`` seconds, stops them all and
    raises LaunchError with the rank's last message. Without ``port``, a free one is chosen; it is
    free when chosen, not necessarily when rank 0 binds it a moment later (another program may
    take it in between), so a run whose port was taken meanwhile starts again on another."""
    if port is not None:
        check_port(port)
        return _launch_on(port, runs, nproc, timeout)
    attempts = PORT_ATTEMPTS
    while True:
        attempts -= 1
        try:
            return _launch_on(free_port(), runs, nproc, timeout)
        except PortTaken:
            if not attempts:
                raise


PORT_ATTEMPTS = 3


class PortTaken(LaunchError):
    """The rendezvous port was taken between its choice and rank 0's bind."""


def _launch_on(port: int, options: list[dict], nproc: int, timeout: float) -> list[list[RankResult]]:
    with tempfile.TemporaryDirectory(prefix="archcalc-ranks-") as folder:
        folder = Path(folder)
        (folder / "options.json").write_text(json.dumps(options))
        processes = []
        try:
            for rank in range(nproc):
                env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": ADDRESS, "MASTER_PORT": str(port),
                       "ARCHCALC_PARENT": str(os.getpid())}
                log = open(folder / f"rank{rank}.log", "wb")
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "archcalc.backend.distributed", str(folder / "options.json")],
                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                log.close()
            _wait(processes, folder, timeout)
        finally:
            _stop(processes)
        found = [json.loads((folder / f"rank{rank}.json").read_text()) for rank in range(nproc)]
        return [[RankResult(**by_rank[i]) for by_rank in found] for i in range(len(options))]


def _wait(processes: list, folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        codes = [process.poll() for process in processes]
        failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            # the first to fail is the cause; the others mostly fail because it left
            rank = min(failed, key=lambda r: (_says_why(folder, r) is None, r))
            error = PortTaken if "EADDRINUSE" in _log(folder, 0) else LaunchError  # rank 0's TCPStore
            raise error(f"rank {rank} of {len(processes)} died (exit code {codes[rank]}): "
                        f"{_says_why(folder, rank) or _last_line(folder, rank)}",
                        hint="the other ranks were stopped; the message above is the rank's last word")
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"the ranks did not finish within {timeout:.0f} s", hint="every rank was stopped")
        time.sleep(0.02)


def _stop(processes: list) -> None:
    """Terminate, then kill, every rank still running, and reap them all."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _says_why(folder: Path, rank: int) -> str | None:
    """The message of an error the rank reported itself (an ArchcalcError), if any."""
    path = folder / f"rank{rank}.error"
    return path.read_text() if path.exists() else None


def _log(folder: Path, rank: int) -> str:
    return (folder / f"rank{rank}.log").read_text(errors="replace")


def _last_line(folder: Path, rank: int) -> str:
    lines = [line for line in _log(folder, rank).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


@dataclass(frozen=True)
class DistributedRun:
    """A run beside its prediction: per rank, the measured results; the checks that failed."""

    predicted: list               # analysis.sharding.ShardedMemory of each rank, on the run's device
    ranks: list                   # RankResult by rank
    expected_shards: list         # fsdp: per rank, the sorted [global shape, local rows] predicted
    expected_gradient_shards: list
    disagreements: list

    @property
    def ok(self) -> bool:
        return not self.disagreements


def run(analysis, options: dict, nproc: int, *, port: int | None = None, timeout: float = 300.0) -> DistributedRun:
    """Check the run's options statically (the same errors as inspect --gpus), launch the ranks,
    and compare: FSDP's shards with analysis/sharding's per-tensor rule, every collective's payload
    with the prediction. The peak's ratio is reported, not judged."""
    return run_each([(analysis, options)], nproc, port=port, timeout=timeout)[0]


def run_each(runs: list, nproc: int, *, port: int | None = None, timeout: float = 300.0) -> list[DistributedRun]:
    """``run`` for several (analysis, options) on the same ranks, one after the other on one
    process group: the processes start once (a benchmark's many runs)."""
    import torch

    if nproc < 2:
        raise LaunchError(f"--nproc {nproc}: a distributed run needs at least 2 processes",
                          hint="archcalc run SPEC without --nproc runs one")
    device = "cuda" if torch.cuda.is_available() and runs[0][1].get("device") != "cpu" else "cpu"
    if device == "cuda" and torch.cuda.device_count() < nproc:
        raise LaunchError(f"--nproc {nproc} needs {nproc} GPUs, this machine has {torch.cuda.device_count()}",
                          hint="fewer processes, or --device cpu")
    predicted = [_predict(analysis, options, nproc, device) for analysis, options in runs]
    results = launch([{**options, "device": device} for _, options in runs], nproc, port=port,
                     timeout=timeout * len(runs))
    return [_compare(analysis, options["shard"], nproc, memories, ranks)
            for (analysis, options), memories, ranks in zip(runs, predicted, results)]


def _predict(analysis, options: dict, nproc: int, device: str) -> list:
    """Every rank's ShardedMemory; the static errors (the batch, a unit's name, a spec too small)."""
    from ..analysis.sharding import batch_hint, sharded_memory, units

    if analysis.batch % nproc:
        raise LaunchError(f"--nproc {nproc} does not divide the batch of {analysis.batch}: every process "
                          f"trains on the same number of samples", hint=batch_hint(analysis.batch, nproc) + " (--batch)")
    units(analysis, tuple(options.get("shard_units") or ()))   # an unknown name stops here, not in N ranks
    return [sharded_memory(analysis, options["shard"], nproc, optimizer=options["optimizer"],
                           shard_units=tuple(options.get("shard_units") or ()), device=device, rank=rank)
            for rank in range(nproc)]


def _compare(analysis, shard: str, nproc: int, predicted: list, ranks: list) -> DistributedRun:
    from ..analysis.sharding import chunk_rows

    every = [(shape, count) for stats in analysis.layers for shape, count in stats.layer.parameter_shapes(stats.input_shape)]
    trained = [(shape, count) for stats in analysis.layers if stats.trainable_params
               for shape, count in stats.layer.parameter_shapes(stats.input_shape)]

    def expected(shapes, rank):
        return sorted([list(shape), chunk_rows(shape[0], nproc, rank)] for shape, count in shapes for _ in range(count))
    shards = [expected(every, r) for r in range(nproc)] if shard == "fsdp" else []
    gradient_shards = [expected(trained, r) for r in range(nproc)] if shard == "fsdp" else []
    disagreements = []
    payloads = {}
    for collective in predicted[0].collectives:
        payloads[collective.name] = payloads.get(collective.name, 0) + collective.payload
    for result in ranks:
        if shard == "fsdp":
            if sorted(result.shards) != shards[result.rank]:
                disagreements.append(f"rank {result.rank}: parameter shards {sorted(result.shards)} "
                                     f"!= predicted {shards[result.rank]}")
            if sorted(result.gradient_shards) != gradient_shards[result.rank]:
                disagreements.append(f"rank {result.rank}: gradient shards {sorted(result.gradient_shards)} "
                                     f"!= predicted {gradient_shards[result.rank]}")
        if result.collectives != payloads:
            disagreements.append(f"rank {result.rank}: collectives {result.collectives} != predicted {payloads}")
    return DistributedRun(predicted, ranks, shards, gradient_shards, disagreements)


# --- one rank ----------------------------------------------------------------------------------

def _watch_parent() -> None:
    """End this rank if the launcher is gone (killed before it could stop us)."""
    parent = int(os.environ.get("ARCHCALC_PARENT", "0"))
    if not parent:
        return

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)
    threading.Thread(target=watch, daemon=True).start()


def worker(runs: list[dict]) -> list[RankResult]:
    """One rank of the runs, one after the other on one process group (see the module's
    docstring). Each run's options: spec (path), params (--set), input (shape or None), batch
    (global), dtype, rounding, shard, shard_units, optimizer, seed, device."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.cuda.is_available() and runs[0].get("device") != "cpu"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        return [train(options, rank, world, device) for options in runs]
    finally:
        dist.destroy_process_group()


def train(options: dict, rank: int, world: int, device) -> RankResult:
    """Build, wrap and train the spec on this rank of the process group that is set up; measure
    the second step."""
    import torch

    from ..analysis import analyze
    from ..spec import load
    from .graph import Network
    from .memtrack import LiveBytes
    from .plan import make_plan
    from .verification import sample_inputs

    analysis = analyze(load(options["spec"], options.get("params") or {}),
                       input_shape=tuple(options["input"]) if options.get("input") else None,
                       batch=options["batch"], dtype=options["dtype"], rounding=options.get("rounding"))
    plan = make_plan(analysis)
    dtype = getattr(torch, analysis.dtype)
    torch.manual_seed(options["seed"])           # every rank builds the same weights
    with torch.device(device):
        network = Network(plan).to(dtype)
    collectives: Counter = Counter()
    if options["shard"] == "ddp":
        model = _ddp(network, collectives, device)
    else:
        model = _fsdp(network, plan, options.get("shard_units") or (), collectives, world)
    torch.manual_seed(options["seed"] + 1 + rank)  # each rank its own samples
    inputs = sample_inputs(torch, plan, analysis.batch // world, dtype, device, None)
    name, settings = OPTIMIZERS[options["optimizer"]]
    optimizer = getattr(torch.optim, name)([p for p in model.parameters() if p.requires_grad],
                                           lr=1e-3, **settings)
    start = time.perf_counter()
    _step(model, inputs, optimizer)
    collectives.clear()
    tracker = LiveBytes()
    tracker.track(*model.parameters(), *model.buffers(), *inputs,
                  *(value for state in optimizer.state.values() for value in state.values()))
    start_bytes = tracker.current
    with tracker:
        _step(model, inputs, optimizer)
    shards, gradient_shards = _local_shards(model) if options["shard"] == "fsdp" else ([], [])
    return RankResult(rank, tracker.peak, start_bytes, dict(collectives), shards, gradient_shards,
                      time.perf_counter() - start)


def _step(model, inputs: tuple, optimizer) -> None:
    """One training step: gradients cleared (set to None), forward to the sum of the outputs,
    backward, the optimizer's step."""
    optimizer.zero_grad(set_to_none=True)
    outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(output.sum() for output in outputs).backward()
    optimizer.step()


def _ddp(network, collectives: Counter, device):
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

    model = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)

    def counted(state, bucket):
        buffer = bucket.buffer()
        collectives["all-reduce"] += buffer.numel() * buffer.element_size()
        return allreduce_hook(state, bucket)
    model.register_comm_hook(None, counted)
    return model


def _fsdp(network, plan, shard_units: tuple, collectives: Counter, world: int):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.fsdp._fully_shard._fsdp_collectives import DefaultAllGather, DefaultReduceScatter

    from ..analysis.sharding import units

    class CountedAllGather(DefaultAllGather):
        def __call__(self, output_tensor, input_tensor, group, async_op=False):
            collectives["all-gather"] += output_tensor.numel() * output_tensor.element_size()
            return _settled(group, lambda: super(CountedAllGather, self).__call__(output_tensor, input_tensor, group,
                                                                                  async_op), output_tensor, input_tensor)

    class CountedReduceScatter(DefaultReduceScatter):
        def __call__(self, output_tensor, input_tensor, group, op, async_op=False):
            collectives["reduce-scatter"] += input_tensor.numel() * input_tensor.element_size()
            return _settled(group, lambda: super(CountedReduceScatter, self).__call__(output_tensor, input_tensor,
                                                                                      group, op, async_op),
                            output_tensor, input_tensor)

    wrapping = units(plan.analysis, tuple(shard_units))
    model = Staged(network, plan, wrapping)
    wrapped = [fully_shard(segment) for segment in model.units]
    wrapped.append(fully_shard(model))
    for module in wrapped:
        module.set_custom_all_gather(CountedAllGather())
        module.set_custom_reduce_scatter(CountedReduceScatter())
    return model


SETTLE_SECONDS = 2.0


def _settled(group, collective, *tensors):
    """Run a (synchronous) collective, then, on gloo, wait until its worker thread has let go of
    the tensors it used: gloo keeps them, and reduce-scatter's clone of its input, until the thread
    takes up its next work, a moment after the caller's wait returns. On a busy machine that moment
    comes late and a buffer FSDP frees meanwhile stays alive, so the measured peak would depend on
    the threads' scheduling; waiting makes it the program's (at most SETTLE_SECONDS). NCCL's own
    references are not waited for (not measured here: this machine has no GPU)."""
    import torch
    import torch.distributed as dist

    if dist.get_backend(group) != "gloo":
        return collective()
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    def uses() -> list[int]:
        return [torch._C._storage_Use_Count(tensor.untyped_storage()._cdata) for tensor in tensors]

    class Seen(TorchDispatchMode):
        """The storages the collective's operations return (gloo's clone, seen as it is copied out)."""

        def __init__(self):
            super().__init__()
            self.storages: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            self.storages += [weakref.ref(value.untyped_storage()) for value in tree_flatten(result)[0]
                              if isinstance(value, torch.Tensor)]
            return result

    before, seen = uses(), Seen()
    with seen:
        result = collective()
    own = {tensor.untyped_storage().data_ptr() for tensor in tensors}
    temporaries = [ref for ref in seen.storages if ref() is not None and ref().data_ptr() not in own]
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline and (any(now > then for now, then in zip(uses(), before))
                                           or any(ref() is not None for ref in temporaries)):
        time.sleep(0.0005)
    return result


def _local_shards(model) -> tuple[list, list]:
    """[[global shape, local rows], ...] of every parameter and of every gradient: FSDP2's shards."""
    def rows(tensor) -> list:
        local = tensor.to_local()
        return [list(tensor.shape), local.shape[0] if local.dim() else local.numel()]
    parameters = [p for p in model.parameters()]
    return ([rows(p) for p in parameters], [rows(p.grad) for p in parameters if p.grad is not None])


@functools.cache
def _staged_class():
    from torch import nn

    from .graph import _pieces, _Segment

    class Segment(nn.Module):
        """Consecutive layers run as one module, an FSDP unit: takes the values it reads from
        before it, returns those read after it (or returned by the network)."""

        def __init__(self, network, piece):
            super().__init__()
            for step in piece.steps:
                if step[2] not in self.children():   # a module applied again (shares:) is registered once
                    self.add_module(f"_{len(self._modules)}", step[2])
            self.steps, self.reads, self.writes, self.released = piece.steps, piece.reads, piece.writes, piece.released
            self._step = network._step

        def forward(self, *values):
            env = dict(zip(self.reads, values))
            for step in self.steps:
                self._step(env, *step)
            return tuple(env[name] for name in self.writes)

    class Staged(nn.Module):
        """The network as FSDP needs it: each unit a submodule running its layers (the Network's
        own modules and steps, partitioned as its checkpointed runs are); the root's layers run
        directly."""

        def __init__(self, network, plan, wrapping):
            super().__init__()
            self.input_names, self.output_names = tuple(plan.inputs), tuple(plan.outputs)
            self._step = network._step
            self._pieces = []
            self.units = []
            for piece in _pieces(network._walk, [step.stats.node.outputs for step in plan.steps],
                                 tuple(unit.layers for unit in wrapping.units), plan.outputs):
                if isinstance(piece, _Segment):
                    piece = Segment(network, piece)
                    self.add_module(f"_unit{len(self.units)}", piece)
                    self.units.append(piece)
                elif piece[2] not in self.modules():
                    self.add_module(f"_{len(self._modules)}", piece[2])
                self._pieces.append(piece)

        def forward(self, *inputs):
            env = dict(zip(self.input_names, inputs))
            for piece in self._pieces:
                if isinstance(piece, Segment):
                    env.update(zip(piece.writes, piece(*(env[read] for read in piece.reads))))
                    for name in piece.released:   # what nothing later reads, as Network drops it
                        del env[name]
                else:
                    self._step(env, *piece)
            results = tuple(env[name] for name in self.output_names)
            return results[0] if len(results) == 1 else results

    return Segment, Staged


def Staged(network, plan, wrapping):  # noqa: N802 - builds the nn.Module class on first use (torch is lazy)
    return _staged_class()[1](network, plan, wrapping)


def main(argv: list[str]) -> int:
    """A worker's entry point: ``python -m archcalc.backend.distributed OPTIONS.json``: the
    options of one run (its result written as one object) or a list of runs (a list)."""
    _watch_parent()
    path = Path(argv[0])
    options = json.loads(path.read_text())
    rank = int(os.environ["RANK"])
    try:
        results = worker(options if isinstance(options, list) else [options])
    except (SpecError, ArchcalcError) as exc:
        (path.parent / f"rank{rank}.error").write_text(str(exc).removeprefix("error: "))
        return 2
    found = [result.__dict__ for result in results]
    (path.parent / f"rank{rank}.json").write_text(json.dumps(found if isinstance(options, list) else found[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
