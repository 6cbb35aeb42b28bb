"""How long archcalc takes to draw a network, apart from Graphviz's own layout time.

    python benchmarks/render_bench.py                 # print the table
    python benchmarks/render_bench.py --save          # and write benchmarks/results/render_bench.md

Our share is load + analyze + building the graph and its DOT text (archcalc.views.render.to_dot);
`dot -Tsvg` is timed apart, for scale, because it is Graphviz's work, not ours. The whole
command writing a .dot file (no Graphviz run) adds Python's start-up and imports. Each figure
is the median of --runs runs (the slowest beside it).
"""
from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import archcalc
from archcalc.fileio import write_text
from archcalc.views.render import to_dot

ROOT = Path(__file__).resolve().parent.parent
SPECS = ("vgg16.yaml", "resnet50.yaml")  # the target, and a large branching graph
RESULTS = ROOT / "benchmarks" / "results" / "render_bench.md"


def timed(function, runs: int) -> tuple[float, float]:
    """(median, slowest) wall time of ``function()`` in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def ours(path: Path, collapse: bool) -> str:
    analysis = archcalc.analyze(archcalc.load(str(path)), partial=True)
    return to_dot(analysis, collapse=collapse)


def graphviz_svg(dot: str) -> None:
    subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--save", action="store_true", help=f"also write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    has_dot = shutil.which("dot") is not None
    lines = [f"# archcalc render timings ({args.runs} runs, median / slowest, ms)", "",
             f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
             f"{platform.processor() or 'cpu'}; Graphviz: "
             + (subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr.strip() if has_dot else "absent"),
             "", "| spec | layers | options | archcalc: load + analyze + DOT | Graphviz dot -Tsvg (not ours) |",
             "|---|---|---|---|---|"]
    for name in SPECS:
        path = ROOT / "specs" / name
        layers = len(archcalc.load(str(path)).nodes)
        for collapse in (False, True):
            median, slowest = timed(lambda path=path, collapse=collapse: ours(path, collapse), args.runs)
            dot = ours(path, collapse)
            layout = "{:.1f} / {:.1f}".format(*timed(lambda dot=dot: graphviz_svg(dot), max(3, args.runs // 10))) \
                if has_dot else "-"
            lines.append(f"| {name} | {layers} | {'--collapse' if collapse else 'default'} | "
                         f"{median:.1f} / {slowest:.1f} | {layout} |")
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "archcalc", "render", str(ROOT / "specs" / SPECS[0]),
                   "-o", str(Path(scratch) / "out.dot")]
        whole = timed(lambda: subprocess.run(command, check=True), max(3, args.runs // 3))
    lines += ["", f"Whole command `archcalc render specs/{SPECS[0]} -o out.dot` (Python start-up and "
                  f"imports included, no Graphviz run): {whole[0]:.0f} / {whole[1]:.0f} ms"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.save:
        write_text(str(RESULTS), text)  # atomically, like every archcalc output


if __name__ == "__main__":
    sys.exit(main())
