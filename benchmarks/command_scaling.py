"""How every command's cost grows with the number of layers, from a spec of a few bytes.

    python benchmarks/command_scaling.py             # writes benchmarks/results/command_scaling.md
    python benchmarks/command_scaling.py --quick     # up to 1,000 layers, no file

Two networks, each a `repeat` of one layer (the spec stays under 100 bytes at any size): relus
over a vector [4], and 1x1 convs with one filter over [1, 4, 4]. At 10 to 200,000 layers, each
of `inspect`, `run --device meta` (its table, and -f json), `export`, `solve` and
`render -o x.dot` runs once as a cold process (bench.py's harness: wall and CPU seconds, peak
memory), killed past --timeout; a command that times out is not tried at larger sizes. The growth exponent k of cpu ~ layers^k is
the least-squares slope in log-log over the sizes from 10,000 up (below, start-up dominates):
1 is linear, 2 quadratic. The cost per layer is (cpu at the largest size - cpu at 10) / layers.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from bench import RESULTS, archcalc_command, loglog_slope, machine, timed

from archcalc.fileio import write_text  # bench put this checkout first on sys.path

LAYER_COUNTS = (10, 100, 1_000, 10_000, 100_000, 200_000)
NETWORKS = {"relu": ("[4]", "relu"), "conv 1x1": ("[1, 4, 4]", "conv: {filters: 1, kernel: 1}")}
COMMANDS = {"inspect": ["inspect", "{spec}"],
            "run --device meta": ["run", "{spec}", "--device", "meta"],
            "run --device meta -f json": ["run", "{spec}", "--device", "meta", "-f", "json"],
            "export": ["export", "{spec}", "-o", "{work}/model.py"],
            "solve": ["solve", "{spec}"],
            "render -o x.dot": ["render", "{spec}", "-o", "{work}/x.dot"]}
FIT_FROM = 10_000


def spec_text(shape: str, layer: str, layers: int) -> str:
    return f"input: {shape}\nlayers:\n  - repeat: {{times: {layers}, layers: [{layer}]}}\n"


def measure(counts: tuple, timeout: float) -> dict:
    """{(network, command): {layers: result}}, a result as bench.timed gives it."""
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for network, (shape, layer) in NETWORKS.items():
            for label, arguments in COMMANDS.items():
                row = results.setdefault((network, label), {})
                for layers in counts:
                    spec = work / f"spec_{layers}.yaml"
                    spec.write_text(spec_text(shape, layer, layers))
                    argv = [*archcalc_command(), *(a.format(spec=spec, work=work) for a in arguments)]
                    result = timed(argv, timeout=timeout)
                    result["timed_out"] = result["rc"] == -9 and result["wall"] >= timeout
                    row[layers] = result
                    print(f"  {network:9s} {label:18s} {layers:>7,}: {_cell(result)}", flush=True)
                    if result["timed_out"]:
                        break
    return results


def fit(row: dict) -> tuple[float, float | None]:
    """(growth exponent over the sizes from FIT_FROM that finished, microseconds of CPU per layer)."""
    done = {layers: r for layers, r in row.items() if r["rc"] == 0}
    fitted = sorted(layers for layers in done if layers >= FIT_FROM)
    exponent = loglog_slope(fitted, [done[layers]["cpu"] for layers in fitted])
    largest = max(done, default=None)
    smallest = min(done, default=None)
    per_layer = (1e6 * (done[largest]["cpu"] - done[smallest]["cpu"]) / (largest - smallest)
                 if largest and largest > smallest else None)
    return exponent, per_layer


def _cell(result: dict) -> str:
    if result["timed_out"]:
        return f"> {result['wall']:.0f} s (killed)"
    text = f"{result['cpu']:.2f} s, {result['rss_kb'] / 1024:.0f} MB"
    return text if result["rc"] == 0 else f"{text}, exit {result['rc']}"


def markdown(results: dict, counts: tuple, timeout: float) -> str:
    info = machine()
    lines = ["# Every command against the number of layers", "",
             f"`python benchmarks/command_scaling.py` at {info['commit']}, {info['date']}: {info['cpu']}, "
             f"{info['cores']} cores, Python {info['python']}, torch {info['versions']['torch']}; load average "
             f"{', '.join(f'{load:.1f}' for load in info['load_average'])} at the end (a shared machine: CPU "
             "time is steadier than wall time, so the table gives CPU seconds, user + system).", "",
             "Each cell: one cold process, CPU seconds and peak resident memory. Specs of under 100 bytes: a "
             f"`repeat` of one layer. Killed after {timeout:.0f} s; growth exponent k of cpu ~ layers^k over "
             f"the sizes from {FIT_FROM:,} up (1 linear, 2 quadratic); per layer: the CPU seconds beyond "
             "the 10-layer run, divided by the layers.", "",
             "| network | command | " + " | ".join(f"{n:,}" for n in counts) + " | k | µs/layer |",
             "|---|---|" + "---:|" * (len(counts) + 2)]
    for (network, label), row in results.items():
        exponent, per_layer = fit(row)
        cells = [_cell(row[n]) if n in row else "-" for n in counts]
        lines.append(f"| {network} | `{label}` | " + " | ".join(cells) +
                     f" | {'-' if math.isnan(exponent) else f'{exponent:.2f}'} | "
                     f"{'-' if per_layer is None else f'{per_layer:,.0f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 1,000 layers; print, write nothing")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a command is killed")
    options = parser.parse_args()
    counts = tuple(n for n in LAYER_COUNTS if n <= 1_000) if options.quick else LAYER_COUNTS
    results = measure(counts, options.timeout)
    text = markdown(results, counts, options.timeout)
    print(text)
    if not options.quick:
        write_text(str(RESULTS / "command_scaling.md"), text)


if __name__ == "__main__":
    main()
