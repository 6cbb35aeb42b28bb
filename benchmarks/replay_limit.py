"""What a replay of the memory schedule costs, up to its limit (footprint.MAX_OPS), and a refusal.

    python benchmarks/replay_limit.py           # writes benchmarks/results/replay_limit.md
    python benchmarks/replay_limit.py --quick   # prints, writes nothing

In one process, CPU seconds (user + system: steadier than wall time on a shared machine), the
best of --repeat runs: the schedule (analysis/schedule.py) of inference and of a training step
with Adam, CUDA's kernels (what inspect, inspect --train and --max-batch plan for), for the
shipped specs that list the most operations, for networks just under the limit (relus, stacked
LSTMs, convolutions with batchnorm and relu), and the time to refuse specs past it. The operations
counted are the limit's: each layer's ops as it lists them for the forward pass (at least one).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import RESULTS, machine

import archcalc
from archcalc.analysis.schedule import operations, schedule
from archcalc.errors import SpecError
from archcalc.fileio import write_text  # bench put this checkout first on sys.path
from archcalc.layers.footprint import MAX_OPS

ROOT = Path(__file__).resolve().parent.parent
SEQUENCE = "{steps: 6, features: 2}"
NEAR = {  # name: (input, the layers a repeat repeats as often as MAX_OPS allows)
    "relu chain": ("[4]", "relu"),
    "lstm stacks (10 layers x 2 directions each)": (SEQUENCE, "{lstm: {hidden: 4, layers: 10, bidirectional: true}}"),
    "conv + batchnorm + relu": ("[4, 8, 8]", "{conv: {filters: 4, kernel: 3, padding: same}}, batchnorm, relu"),
}
PAST = {  # name: (input, layer): refused
    "gru, 2^63-1 layers": (SEQUENCE, "gru: {hidden: 9223372036854775807, layers: 9223372036854775807}"),
    "rnn, 10^6 layers": (SEQUENCE, "rnn: {hidden: 1, layers: 1000000}"),
    f"relu chain, {MAX_OPS + 1:,} layers": ("[4]", f"repeat: {{times: {MAX_OPS + 1}, layers: [relu]}}"),
}


def most_operations(analysis) -> int:
    """The forward's ops as the limit counts them, the most of inference and training (CUDA's kernels)."""
    return max(operations(analysis, training, "cuda") for training in (False, True))


def cpu(work, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def replays(analysis, repeat: int) -> tuple[float, float]:
    """CPU seconds of the inference and the training replay (adam, cuda kernels)."""
    return (cpu(lambda: schedule(analysis, device="cuda"), repeat),
            cpu(lambda: schedule(analysis, training=True, optimizer="adam", device="cuda"), repeat))


def refused(text: str, repeat: int) -> tuple[float, str]:
    """CPU seconds from the analysis to the schedule's refusal, and its message."""
    analysis = archcalc.analyze(archcalc.loads(text))
    message = ""

    def attempt():
        nonlocal message
        try:
            schedule(analysis, training=True, optimizer="adam", device="cuda")
        except SpecError as exc:
            message = exc.message
    return cpu(attempt, repeat), message


def measure(repeat: int, quick: bool) -> dict:
    shipped = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        analysis = archcalc.analyze(archcalc.load(str(path)))
        shipped.append((most_operations(analysis), path.name, analysis))
    shipped.sort(key=lambda row: row[0], reverse=True)
    rows = {"shipped": [(name, count, *replays(analysis, repeat)) for count, name, analysis in shipped[:5]]}
    near = []
    for name, (shape, layers) in NEAR.items():
        def repeated(times: int, shape=shape, layers=layers):
            return archcalc.analyze(archcalc.loads(f"input: {shape}\nlayers:\n  - repeat: {{times: {times}, "
                                                   f"layers: [{layers}]}}\n"))
        times = MAX_OPS // most_operations(repeated(1)) // (10 if quick else 1)
        analysis = repeated(times)
        near.append((name, most_operations(analysis), *replays(analysis, 1)))
    rows["near"] = near
    rows["past"] = [(name, *refused(f"input: {shape}\nlayers:\n  - {layer}\n", repeat))
                    for name, (shape, layer) in PAST.items()]
    return rows


def report(rows: dict, about: dict, repeat: int) -> str:
    lines = ["# The memory schedule's replay, up to its limit", "",
             f"`python benchmarks/replay_limit.py` at {about['commit']}, {about['date']}: {about['cpu']}, "
             f"{about['cores']} cores, Python {about['python']}; load average "
             f"{', '.join(f'{x:.1f}' for x in about['load_average'])} at the end. CPU seconds (user + system), "
             f"the best of {repeat} runs (1 for the networks at the limit), in one process: the schedule of "
             f"inference and of a training step with Adam, CUDA's kernels. Operations: the forward's, as the "
             f"limit counts them (footprint.MAX_OPS = {MAX_OPS:,}: past it a replay is refused).", "",
             "| network | operations | inference | training step (adam) |", "|---|---:|---:|---:|"]
    lines += [f"| `{name}` | {count:,} | {inference:.3f} s | {training:.3f} s |"
              for name, count, inference, training in rows["shipped"]]
    lines += [f"| {name} | {count:,} | {inference:.2f} s | {training:.2f} s |"
              for name, count, inference, training in rows["near"]]
    lines += ["", "Refused past the limit (the training step asked for):", "",
              "| spec | refused in | message |", "|---|---:|---|"]
    lines += [f"| {name} | {seconds:.3f} s | {message} |" for name, seconds, message in rows["past"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the networks at the limit; print only")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    rows = measure(options.repeat, options.quick)
    text = report(rows, machine(), options.repeat)
    print(text)
    if not options.quick:
        write_text(RESULTS / "replay_limit.md", text)


if __name__ == "__main__":
    main()
