#!/usr/bin/env python3
"""Peak memory, side by side: archcalc's schedule against what PyTorch allocates, and the peers.

    python benchmarks/memory_bench.py            # -> benchmarks/results/memory_bench.md

For every shipped spec at batch 1 and 8, inference and one Adam training step (the second, as
`archcalc run --memory` measures it), on CPU (this machine has no GPU):
- measured: the live tensor bytes PyTorch allocates while the built model runs (archcalc's
  TorchDispatchMode tracker, backend/memtrack.py): the reference;
- archcalc: the memory schedule (analysis/schedule.py, CPU kernels), static, and its time;
- MemTracker: torch.distributed._tools.mem_tracker.MemTracker's peak over the same run (real
  tensors), and over the same run on FakeTensorMode (no arithmetic: PyTorch's own way to estimate
  without running), each with its time; it counts the module, its optimizer and what is made
  inside its context, not the input batch made before it (the tracker registers the batch), so
  it reads low by the batch where the batch is large;
- torchinfo's "Estimated Total Size", its rule written out (torchinfo is not installed here):
  input + 2 x the outputs of every leaf module + parameters;
- accelerate's estimator and DeepSpeed's model-state rule, written out (neither is installed):
  inference = the parameters; an Adam training step = 16 bytes per float32 parameter (weights,
  gradients, two Adam states), no activations.
Specs whose step would take long on 2 CPU cores (MACs x batch above 3 G) are measured at batch 1
only, and MemTracker's real run is repeated only up to 1 G (its FakeTensor run everywhere);
zero_7_5b (7.5 billion parameters) is left out. Ratios are predicted / measured; "-": not run, or
MemTracker refused (a frozen parameter).
"""
from __future__ import annotations

import argparse
import datetime
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
from archcalc.fileio import write_text  # noqa: E402

HEAVY = 3 * 10**9
LIGHT = 10**9   # MACs x batch up to which the real MemTracker run is repeated beside the measurement
LARGEST = 2 * 10**8   # parameters: the ZeRO paper's 7.5B spec is for the sharding model, not this machine
MODES = (("inference", False), ("adam step", True))


def build(analysis):
    plan = make_plan(analysis)
    torch.manual_seed(0)
    network = Network(plan)
    inputs = sample_inputs(torch, plan, analysis.batch, torch.float32, "cpu", None)
    return network, inputs


def step(network, inputs, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    outputs = network.run(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(output.sum() for output in outputs).backward()
    optimizer.step()


def memtracker(analysis, train: bool, fake: bool) -> tuple[int, float]:
    """MemTracker's peak over inference, or over two Adam steps (the second with state); None
    where it cannot run (it refuses a frozen parameter: 'cannot register a hook on a tensor that
    doesn't require gradient')."""

    start = time.perf_counter()
    try:
        return _memtracker(analysis, train, fake), time.perf_counter() - start
    except RuntimeError:
        return None, time.perf_counter() - start


def _memtracker(analysis, train: bool, fake: bool) -> int:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    with FakeTensorMode() if fake else torch.device("cpu"):
        network, inputs = build(analysis)
        tracker = MemTracker()
        if not train:
            network.eval()
            tracker.track_external(network)
            with tracker, torch.no_grad():
                network.run(*inputs)
        else:
            optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=1e-3)
            network.train()
            tracker.track_external(network, optimizer)
            with tracker:
                step(network, inputs, optimizer)
                tracker.reset_mod_stats()   # its per-module record allows one iteration; the peak stays
                step(network, inputs, optimizer)
    return tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]


def torchinfo_rule(analysis) -> int:
    """input + 2 x every leaf module's output + parameters, in bytes (torchinfo's estimate)."""
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


def row(path: Path, batch: int, name: str, train: bool) -> dict | None:
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=batch)
    if train and not analysis.totals.trainable_params:
        return None
    start = time.perf_counter()
    replay = schedule(archcalc.analyze(archcalc.load(str(path)), batch=batch), training=train, optimizer="adam",
                      device="cpu")
    predicted, seconds = replay.peak(), time.perf_counter() - start
    network, inputs = build(analysis)
    measured = max(measure(network, inputs, train=train, optimizer="adam").peaks.values())
    real, real_seconds = memtracker(analysis, train, fake=False) if analysis.totals.macs * batch <= LIGHT else (None, 0)
    fake, fake_seconds = memtracker(analysis, train, fake=True)
    parameters = analysis.totals.param_bytes + analysis.totals.buffer_bytes
    kinds = sorted({stats.kind for stats in analysis.layers} & {"rnn", "lstm", "gru"})
    return {"spec": path.stem, "batch": batch, "mode": name, "measured": measured,
            "archcalc": predicted, "archcalc_ms": 1e3 * seconds, "memtracker": real, "memtracker_s": real_seconds,
            "fake": fake, "fake_s": fake_seconds, "torchinfo": torchinfo_rule(analysis),
            "accelerate": parameters + 3 * 4 * analysis.totals.trainable_params if train else parameters,
            "approximate": ", ".join(kinds)}


def markdown(rows: list, environment: dict) -> str:
    def ratio(value, measured):
        return "-" if value is None else f"{value / measured:.3f}"
    lines = ["# Peak memory: archcalc's schedule, PyTorch's allocations and the peers", "",
             *(f"- {key}: {value}" for key, value in environment.items()), "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "| spec | batch | mode | measured bytes | archcalc | (ms) | MemTracker | (s) | MemTracker, fake | (s) "
             "| torchinfo rule | accelerate / DeepSpeed rule | not modelled |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        m = r["measured"]
        lines.append(f"| {r['spec']} | {r['batch']} | {r['mode']} | {m:,} | {ratio(r['archcalc'], m)} | "
                     f"{r['archcalc_ms']:.1f} | {ratio(r['memtracker'], m)} | {r['memtracker_s']:.2f} | "
                     f"{ratio(r['fake'], m)} | {r['fake_s']:.2f} | {ratio(r['torchinfo'], m)} | "
                     f"{ratio(r['accelerate'], m)} | {r['approximate']} |")
    within = [r for r in rows if not r["approximate"] and r["measured"] > 10**6]
    worst = max(within, key=lambda r: abs(r["archcalc"] / r["measured"] - 1), default=None)
    if worst is not None:
        lines += ["", f"Rows above 1 MB measured without a recurrent layer: {len(within)}, archcalc's largest "
                      f"deviation {worst['archcalc'] / worst['measured']:.4f} ({worst['spec']}, batch {worst['batch']}, "
                      f"{worst['mode']})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", type=Path, default=sorted((ROOT / "specs").glob("*.yaml")))
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "memory_bench.md")
    parser.add_argument("--max-macs", type=int, default=None,
                        help="leave out the specs above this many MACs per sample (a short run)")
    options = parser.parse_args(argv)
    rows, left_out = [], []
    for path in options.specs:
        totals = archcalc.analyze(archcalc.load(str(path))).totals
        if options.max_macs is not None and totals.macs > options.max_macs:
            left_out.append(path.stem)
            continue
        for batch in (1, 8):
            if totals.macs * batch > HEAVY and batch > 1 or totals.params > LARGEST:
                continue
            for name, train in MODES:
                found = row(path, batch, name, train)
                if found:
                    rows.append(found)
                    print(path.stem, batch, name, f"{found['archcalc'] / found['measured']:.4f}", flush=True)
    environment = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, CPU only (no GPU)",
                   "torch": torch.__version__, "python": platform.python_version()}
    if left_out:
        environment["left out (above --max-macs " + f"{options.max_macs:,} MACs per sample)"] = ", ".join(left_out)
    write_text(str(options.output), markdown(rows, environment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
