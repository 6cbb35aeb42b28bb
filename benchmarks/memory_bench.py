#!/usr/bin/env python3
"""Peak memory, side by side: archcalc's schedule against what PyTorch allocates, and the peers.

    nice -n 10 python benchmarks/memory_bench.py     # -> benchmarks/results/memory_bench.md
    python benchmarks/memory_bench.py --specs specs/lenet5.yaml --output /tmp/lenet5.md

For every shipped spec (the torchvision networks among them: alexnet_torchvision, the ResNets,
MobileNets, EfficientNet-B0, ShuffleNet, RegNet, ConvNeXt and ViT specs build torchvision's
networks one to one, benchmarks/results/zoo_check.md) at batch 1 and 32, for inference, a
training step with SGD and one with Adam (the second step, optimizer state present, as
`archcalc run --memory` measures it), float32 on CPU (this machine has no GPU):
- measured: the peak of the live tensor bytes PyTorch allocates while the spec's built model
  runs, seen by archcalc's TorchDispatchMode tracker (backend/memtrack.py, the same as `archcalc
  run --memory`): the reference of every ratio. Batch 1 runs for real, inference up to 160 G
  MACs per sample (all but tinyllama), a training step up to 5 G (the CNNs up to ConvNeXt-Tiny;
  bert_base and captioning_vgg16 ran for real too, before the machine's load rose to 17 on its 2
  cores); batch 32 only up to 2 G MACs x batch (the course's and small networks). Where the run
  would take long on the 2 shared CPU cores or need more memory than this machine of 23 GB lends
  (a predicted peak above 6 GB), the same tracker runs the same model over FakeTensorMode (every operation's output shapes and dtypes, no arithmetic, no memory): "fake"
  in the "run" column. Every batch-1 row that runs for real also runs on FakeTensorMode: the
  column "fake = real" says whether both give the same peak of every phase, byte for byte (the
  check that the fake rows stand for real runs);
- archcalc: the memory schedule (analysis/schedule.py, CPU kernels), static; the step's peak
  over its phases, the worst phase's ratio among the phases above 1 MB, and its time;
- allocator: the peak of the bytes PyTorch's CPU allocator hands out during the same run
  without any dispatch mode (torch.profiler's memory events, one intra-op thread, plus what is
  live before: weights, buffers, batch, optimizer state): real runs only. It sees what a kernel
  allocates and frees inside one operation (oneDNN's blocked outputs and weight reorders), which
  no dispatch mode sees, and the code PyTorch runs when no mode is active: F.linear on a
  non-contiguous input adds its bias in place (isTensorSubclassLike is true under any mode);
  real runs up to 5 G MACs x batch (it doubles the time of the measured run);
- MemTracker: torch.distributed._tools.mem_tracker.MemTracker's peak over the same run on real
  tensors (where MACs x batch is at most 1 G) and on FakeTensorMode (at batch 1, and at 32 where
  the measured run is real: its module hooks made it 5 to 17 times slower than the measured run
  on FakeTensorMode, 484 s for ConvNeXt-Tiny's SGD step at batch 32 under this machine's load),
  each with its time; it counts the module, its optimizer and what is made inside its context, not the input
  batch made before it, so it reads low by the batch where the batch is large; "-": not run, or
  MemTracker refused (a frozen parameter; vit_b_16, where its module hooks fail);
- torchinfo's "Estimated Total Size", its rule written out (torchinfo is not installed here):
  input + 2 x the outputs of every leaf module + parameters (its forward run on FakeTensorMode);
- accelerate's estimator and DeepSpeed's model-state rule, written out (neither is installed):
  inference = the parameters; an Adam or SGD training step = 16 bytes per float32 trainable
  parameter (weights, gradients, two Adam states), no activations.
zero_7_5b (7.5 billion parameters, for the sharding model) is left out. Ratios are predicted /
measured; "approximate": the kinds that state a memory_gap (the recurrent layers: cuDNN on CUDA,
mixed precision, bias: single's zero biases; none of it in these CPU rows but min_char_rnn's 400 bytes).
Runs under `nice -n 10`, one process, OMP threads as the environment sets them (the allocator
column one thread).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archcalc  # noqa: E402
from archcalc.analysis.schedule import schedule  # noqa: E402
from archcalc.backend.graph import Network  # noqa: E402
from archcalc.backend.memtrack import measure  # noqa: E402
from archcalc.backend.plan import make_plan  # noqa: E402
from archcalc.backend.verification import sample_inputs  # noqa: E402
from archcalc.choices import OPTIMIZERS  # noqa: E402
from archcalc.fileio import write_text  # noqa: E402

BATCHES = (1, 32)
MODES = (("inference", False, "sgd"), ("SGD step", True, "sgd"), ("Adam step", True, "adam"))
REAL_MACS = 2 * 10**9     # MACs x batch above which the measured run is on FakeTensorMode (batch > 1)
REAL_INFERENCE_MACS = 160 * 10**9   # at batch 1: up to GPT-2's 146 G
REAL_TRAINING_MACS = 5 * 10**9      # at batch 1: up to ConvNeXt-Tiny's 4.5 G (GPT-2's step takes minutes here)
ALLOCATOR_MACS = 5 * 10**9          # MACs x batch up to which the allocator's run is repeated
REAL_BYTES = 6 * 10**9    # a predicted peak above which likewise (a machine of 23 GB, shared)
MEMTRACKER_MACS = 10**9   # MACs x batch up to which MemTracker's real run is repeated
LEFT_OUT = {"zero_7_5b": "7.5 billion parameters (120 GB of weights, gradients and Adam state): the sharding model's spec"}
MB = 10**6


def fake_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode
    return FakeTensorMode()


def build(analysis):
    plan = make_plan(analysis)
    torch.manual_seed(0)
    network = Network(plan)
    inputs = sample_inputs(torch, plan, analysis.batch, torch.float32, "cpu", None)
    return network, inputs


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def tracked(analysis, train: bool, optimizer: str, fake: bool) -> dict:
    """{phase: peak} of archcalc's tracker over the built model, real or on FakeTensorMode."""
    with fake_mode() if fake else contextlib.nullcontext():
        network, inputs = build(analysis)
        return measure(network, inputs, train=train, optimizer=optimizer).peaks


def storage_bytes(tensors) -> int:
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def allocator(analysis, train: bool, optimizer: str) -> int:
    """The CPU allocator's peak during the run (the second step when training), no dispatch mode:
    what is live before it, plus the largest running sum of torch.profiler's memory events (an
    allocation made before profiling and freed during it reports nothing: the gradients freed by
    zero_grad, counted in neither)."""
    from torch.profiler import ProfilerActivity, profile

    network, inputs = build(analysis)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the profiler records the allocations of the threads it follows
    try:
        if not train:
            network.eval()
            before = storage_bytes([*network.parameters(), *network.buffers(), *inputs])
            with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
                network.run(*inputs)
            return before + _running_peak(profiler)
        name, options = OPTIMIZERS[optimizer]
        step = getattr(torch.optim, name)([p for p in network.parameters() if p.requires_grad], lr=1e-3, **options)
        network.train()

        def iteration():
            step.zero_grad(set_to_none=True)
            outputs = network.run(*inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            loss = sum(output.sum() for output in outputs)
            del outputs
            loss.backward()
            del loss
            step.step()
        iteration()
        before = storage_bytes([*network.parameters(), *network.buffers(), *inputs,
                                *(value for state in step.state.values() for value in state.values()
                                  if isinstance(value, torch.Tensor))])
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            iteration()
        return before + _running_peak(profiler)
    finally:
        torch.set_num_threads(threads)


def _running_peak(profiler) -> int:
    events = sorted((event.start_ns(), event.nbytes()) for event in profiler.profiler.kineto_results.events()
                    if event.name() == "[memory]")
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


def memtracker(analysis, train: bool, optimizer: str, fake: bool) -> int | None:
    """MemTracker's peak over inference, or over two training steps (the second with state); None
    where it cannot run (it refuses a frozen parameter: 'cannot register a hook on a tensor that
    doesn't require gradient'; on vit_b_16 its module hooks fail: 'Expected gradient function to
    be set')."""
    try:
        return _memtracker(analysis, train, optimizer, fake)
    except (RuntimeError, AssertionError):
        return None


def _memtracker(analysis, train: bool, optimizer: str, fake: bool) -> int:
    from torch.distributed._tools.mem_tracker import MemTracker

    with fake_mode() if fake else contextlib.nullcontext():
        network, inputs = build(analysis)
        tracker = MemTracker()
        if not train:
            network.eval()
            tracker.track_external(network)
            with tracker, torch.no_grad():
                network.run(*inputs)
        else:
            name, options = OPTIMIZERS[optimizer]
            step = getattr(torch.optim, name)([p for p in network.parameters() if p.requires_grad], lr=1e-3,
                                              **options)
            network.train()
            tracker.track_external(network, step)
            with tracker:
                for iteration in range(2):
                    step.zero_grad(set_to_none=True)
                    outputs = network.run(*inputs)
                    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
                    sum(output.sum() for output in outputs).backward()
                    step.step()
                    if iteration == 0:
                        tracker.reset_mod_stats()   # its per-module record allows one iteration; the peak stays
    return tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]


def torchinfo_rule(analysis) -> int:
    """input + 2 x every leaf module's output + parameters, in bytes (torchinfo's estimate); the
    forward on FakeTensorMode (only shapes count)."""
    with fake_mode():
        network, inputs = build(analysis)
        network.eval()
        total = [0]

        def hook(_module, _inputs, output):
            for value in output if isinstance(output, tuple) else (output,):
                if isinstance(value, torch.Tensor):
                    total[0] += value.numel() * value.element_size()
        handles = [m.register_forward_hook(hook) for m in network.modules() if not list(m.children())]
        with torch.no_grad():
            network.run(*inputs)
        for handle in handles:
            handle.remove()
        parameters = sum(p.numel() * p.element_size() for p in network.parameters())
        return sum(x.numel() * x.element_size() for x in inputs) + 2 * total[0] + parameters


def row(path: Path, batch: int, mode: str, train: bool, optimizer: str) -> dict | None:
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=batch)
    if train and not analysis.totals.trainable_params:
        return None
    replay, seconds = timed(lambda: schedule(archcalc.analyze(archcalc.load(str(path)), batch=batch),
                                             training=train, optimizer=optimizer, device="cpu"))
    predicted = {phase: replay.peak(phase) for phase in replay.phases}
    work = analysis.totals.macs * batch
    single = REAL_TRAINING_MACS if train else REAL_INFERENCE_MACS
    real = (work <= REAL_MACS or batch == 1 and work <= single) and max(predicted.values()) <= REAL_BYTES
    peaks, measured_seconds = timed(tracked, analysis, train, optimizer, not real)
    agrees = None
    if real and batch == 1:
        agrees = tracked(analysis, train, optimizer, True) == peaks
    measured = max(peaks.values())
    phases = [predicted[phase] / peaks[phase] for phase in predicted if peaks[phase] > MB]
    allocated, allocator_seconds = (timed(allocator, analysis, train, optimizer) if real and work <= ALLOCATOR_MACS
                                     else (None, 0.0))
    tracker_real, tracker_real_seconds = (timed(memtracker, analysis, train, optimizer, False)
                                          if real and work <= MEMTRACKER_MACS else (None, 0.0))
    tracker_fake, tracker_fake_seconds = (timed(memtracker, analysis, train, optimizer, True) if real or batch == 1
                                          else (None, 0.0))
    parameters = analysis.totals.param_bytes + analysis.totals.buffer_bytes
    return {"spec": path.stem, "batch": batch, "mode": mode, "run": "real" if real else "fake", "agrees": agrees,
            "measured": measured, "measured_s": measured_seconds, "archcalc": max(predicted.values()),
            "worst_phase": max(phases, key=lambda r: abs(r - 1), default=None), "archcalc_ms": 1e3 * seconds,
            "allocator": allocated, "allocator_s": allocator_seconds,
            "memtracker": tracker_real, "memtracker_s": tracker_real_seconds,
            "fake": tracker_fake, "fake_s": tracker_fake_seconds, "torchinfo": torchinfo_rule(analysis),
            "accelerate": parameters + 3 * 4 * analysis.totals.trainable_params if train else parameters,
            "approximate": ", ".join(sorted({stats.kind for stats in analysis.layers
                                             if stats.layer.memory_gap}))}


def markdown(rows: list, environment: dict) -> str:
    def ratio(value, measured):
        return "-" if value is None else f"{value / measured:.3f}"
    agrees = {None: "", True: "yes", False: "**no**"}
    lines = ["# Peak memory: archcalc's schedule, PyTorch's allocations and the peers", "",
             *(f"- {key}: {value}" for key, value in environment.items()), "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "| spec | batch | mode | run | fake = real | measured bytes | (s) | archcalc | worst phase | (ms) "
             "| allocator | (s) | MemTracker | (s) | MemTracker, fake | (s) | torchinfo rule "
             "| accelerate / DeepSpeed rule | approximate |",
             "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        m = r["measured"]
        worst = "-" if r["worst_phase"] is None else f"{r['worst_phase']:.3f}"
        lines.append(f"| {r['spec']} | {r['batch']} | {r['mode']} | {r['run']} | {agrees[r['agrees']]} | {m:,} | "
                     f"{r['measured_s']:.1f} | {ratio(r['archcalc'], m)} | {worst} | {r['archcalc_ms']:.1f} | "
                     f"{ratio(r['allocator'], m)} | {r['allocator_s']:.1f} | {ratio(r['memtracker'], m)} | "
                     f"{r['memtracker_s']:.1f} | {ratio(r['fake'], m)} | {r['fake_s']:.1f} | "
                     f"{ratio(r['torchinfo'], m)} | {ratio(r['accelerate'], m)} | {r['approximate']} |")
    lines += ["", *summary(rows)]
    return "\n".join(lines) + "\n"


def summary(rows: list) -> list[str]:
    """How many rows are above 1 MB, and those outside 0.97-1.03 (any phase above 1 MB)."""
    large = [r for r in rows if r["measured"] > MB]
    off = [r for r in large if not 0.97 <= r["worst_phase"] <= 1.03]
    modelled = [r for r in large if not r["approximate"]]
    lines = [f"Rows above 1 MB: {len(large)} ({len(modelled)} without an approximate kind); outside 0.97-1.03 in "
             f"some phase above 1 MB: {len(off)}"
             + (":" if off else "."), ""]
    lines += [f"- {r['spec']}, batch {r['batch']}, {r['mode']}: worst phase {r['worst_phase']:.3f}"
              + (f" ({r['approximate']})" if r["approximate"] else "") for r in off]
    checked = [r for r in rows if r["agrees"] is not None]
    lines += ["", f"Fake = real (batch 1, every phase's peak byte for byte): {sum(r['agrees'] for r in checked)} of "
                  f"{len(checked)} rows checked."]
    allocated = sorted(((r["allocator"] / r["measured"], r) for r in large if r["allocator"] is not None),
                       key=lambda pair: pair[0])
    if allocated:
        (low, lowest), (high, highest) = allocated[0], allocated[-1]
        lines += ["", f"The CPU allocator's peak without a dispatch mode, over the tracker's, in the {len(allocated)} rows "
                      f"above 1 MB where it ran: {low:.3f} ({lowest['spec']}, batch {lowest['batch']}, {lowest['mode']}) "
                      f"to {high:.3f} ({highest['spec']}, batch {highest['batch']}, {highest['mode']}); above 1.03 in "
                      f"{sum(ratio > 1.03 for ratio, _ in allocated)}, below 0.97 in {sum(ratio < 0.97 for ratio, _ in allocated)}."]
    if [r for r in rows if r["agrees"] is False]:
        lines += ["", "Fake and real runs differ: " + ", ".join(
            f"{r['spec']} batch {r['batch']} {r['mode']}" for r in rows if r["agrees"] is False)]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", type=Path, default=sorted((ROOT / "specs").glob("*.yaml")))
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "memory_bench.md")
    parser.add_argument("--rows", type=Path, help="a JSON file of the rows measured so far: read at the start (rows "
                                                  "found there are not run again) and rewritten after each row")
    options = parser.parse_args(argv)
    done = json.loads(options.rows.read_text()) if options.rows and options.rows.exists() else []
    known = {(r["spec"], r["batch"], r["mode"]) for r in done}
    rows = list(done)
    start = time.perf_counter()
    for path in options.specs:
        if path.stem in LEFT_OUT:
            continue
        for batch in BATCHES:
            for mode, train, optimizer in MODES:
                if (path.stem, batch, mode) in known:
                    continue
                found = row(path, batch, mode, train, optimizer)
                if found:
                    rows.append(found)
                    if options.rows:
                        options.rows.write_text(json.dumps(rows, indent=0))
                    print(path.stem, batch, mode, found["run"], f"{found['archcalc'] / found['measured']:.4f}",
                          f"{time.perf_counter() - start:.0f}s", flush=True)
    modes = [mode for mode, _, _ in MODES]
    rows.sort(key=lambda r: (r["spec"], r["batch"], modes.index(r["mode"])))
    environment = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, 2 CPU cores "
                   "shared with other jobs (times are wall clock under that load), no GPU",
                   "torch": torch.__version__, "python": platform.python_version(),
                   "left out": "; ".join(f"{name}: {why}" for name, why in LEFT_OUT.items())}
    missing = sorted({path.stem for path in (ROOT / "specs").glob("*.yaml")} - {r["spec"] for r in rows} - set(LEFT_OUT))
    if missing:
        environment["not measured in this run"] = ", ".join(missing)
    write_text(str(options.output), markdown(rows, environment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
