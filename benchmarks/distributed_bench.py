#!/usr/bin/env python3
"""Per-rank peak memory under DDP and FSDP: archcalc's prediction against torch.distributed runs.

    python benchmarks/distributed_bench.py        # -> benchmarks/results/distributed_bench.md

For every shipped spec that trains on this machine's CPU in seconds (training FLOPs of one step
at the global batch of 8 at most 10 G), under DDP and FSDP2 on 2 and 4 processes (gloo), what
``archcalc run SPEC --nproc N --shard S --batch 8 --optimizer adam --device cpu`` does (the runs
of one process count share one process group, one after the other: the processes start once): every
rank's peak of live tensor bytes over the second training step, beside analysis/sharding.py's
prediction for that rank, and whether every parameter's and gradient's to_local() shard and every
collective's payload is the predicted one. A spec with fewer parameters than processes cannot be
sharded (FSDP on 4: the command refuses it): "-". Ratios are predicted / measured, the lowest
and highest over the ranks.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import archcalc  # noqa: E402
from archcalc.analysis.sharding import sharded_memory  # noqa: E402
from archcalc.backend.distributed import run_each  # noqa: E402
from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.fileio import write_text  # noqa: E402

BATCH = 8
MOST_FLOPS = 10 * 10**9     # training FLOPs of one step at BATCH: 3 x forward
RUNS = (("ddp", 2), ("ddp", 4), ("fsdp", 2), ("fsdp", 4))


def selected(paths: list[Path]) -> tuple[list[Path], list[str]]:
    chosen, left_out = [], []
    for path in paths:
        totals = archcalc.analyze(archcalc.load(str(path)), batch=BATCH).totals
        (chosen if 3 * totals.flops * BATCH <= MOST_FLOPS else left_out).append(path)
    return chosen, [path.stem for path in left_out]


def measure(paths: list[Path], nproc: int) -> list[dict]:
    """Every spec under DDP and FSDP on ``nproc`` ranks, all on one process group (the processes
    start once), as ``archcalc run --nproc`` runs each; a run the command refuses: its message."""
    runs, rows = [], []
    for path in paths:
        analysis = archcalc.analyze(archcalc.load(str(path)), batch=BATCH)
        for shard in ("ddp", "fsdp"):
            try:
                sharded_memory(analysis, shard, nproc, optimizer="adam", device="cpu")
            except ArchcalcError as exc:
                rows.append({"spec": path.stem, "shard": shard, "nproc": nproc, "refused": str(exc).splitlines()[0]})
                continue
            runs.append((analysis, {"spec": str(path), "batch": BATCH, "dtype": "float32", "shard": shard,
                                    "shard_units": [], "optimizer": "adam", "seed": 0, "device": "cpu"}))
    start = time.perf_counter()
    results = run_each(runs, nproc)
    print(f"{len(runs)} runs on {nproc} processes: {time.perf_counter() - start:.0f} s", flush=True)
    for (analysis, options), result in zip(runs, results):
        ratios = [p.total_bytes / r.peak_bytes for p, r in zip(result.predicted, result.ranks)]
        rows.append({"spec": Path(options["spec"]).stem, "shard": options["shard"], "nproc": nproc,
                     "params": analysis.totals.params, "predicted": [p.total_bytes for p in result.predicted],
                     "measured": [r.peak_bytes for r in result.ranks], "low": min(ratios), "high": max(ratios),
                     "exact_shards": result.ok, "disagreements": result.disagreements,
                     "seconds": [r.seconds for r in result.ranks]})
    return rows


def cell(found: dict | None) -> str:
    if found is None or "refused" in found:
        return "-"
    text = f"{found['low']:.3f}" if f"{found['low']:.3f}" == f"{found['high']:.3f}" \
        else f"{found['low']:.3f}-{found['high']:.3f}"
    return text if found["exact_shards"] else text + " (shards differ)"


def markdown(rows: list[dict], environment: dict) -> str:
    lines = ["# Per-rank peak memory under DDP and FSDP: predicted / measured", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += ["", __doc__.split("\n\n", 2)[2].strip(), ""]
    lines += ["| spec | parameters | " + " | ".join(f"{shard}, {n}" for shard, n in RUNS)
              + " | measured peaks (bytes, rank 0) |",
              "|---|---:|" + "---:|" * len(RUNS) + "---|"]
    by_spec: dict[str, dict] = {}
    for row in rows:
        by_spec.setdefault(row["spec"], {})[(row["shard"], row["nproc"])] = row
    for spec, runs in by_spec.items():
        params = next((row["params"] for row in runs.values() if "params" in row), 0)
        peaks = ", ".join(f"{shard} {n}: {runs[(shard, n)]['measured'][0]:,}" for shard, n in RUNS
                          if (shard, n) in runs and "measured" in runs[(shard, n)])
        lines.append(f"| {spec} | {params:,} | " + " | ".join(cell(runs.get(run)) for run in RUNS) + f" | {peaks} |")
    outside = [f"{row['spec']} {row['shard']} {row['nproc']}" for row in rows
               if "low" in row and not 0.95 <= row["low"] <= row["high"] <= 1.05]
    lines += ["", "Outside 0.95-1.05: " + (", ".join(outside) or "none") + "."]
    differ = [f"{row['spec']} {row['shard']} {row['nproc']}: {row['disagreements']}" for row in rows
              if row.get("disagreements")]
    lines += ["Shards or payloads not as predicted: " + ("; ".join(differ) or "none") + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", type=Path, default=sorted((ROOT / "specs").glob("*.yaml")))
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "distributed_bench.md")
    options = parser.parse_args(argv)
    paths, left_out = selected(options.specs)
    rows = [row for nproc in sorted({n for _, n in RUNS}) for row in measure(paths, nproc)]
    for row in rows:
        print(row["spec"], row["shard"], row["nproc"], cell(row), row.get("refused", ""), flush=True)
    environment = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, CPU only (no GPU)",
                   "torch": torch.__version__, "python": platform.python_version(),
                   "left out (over 10 GFLOPs a step)": ", ".join(left_out) or "none"}
    write_text(str(options.output), markdown(rows, environment))
    write_text(str(options.output.with_suffix(".json")), json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
