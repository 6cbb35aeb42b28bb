"""archcalc's speed and scale, measured as a user meets them: whole cold processes.

    python benchmarks/bench.py            # about 5 minutes; writes benchmarks/results/bench.{md,json}
    python benchmarks/bench.py --quick    # a smoke run: 3 repeats, up to 10,000 layers, no files

1. Side by side: `archcalc inspect SPEC` against torchinfo's `summary` on the same network in
   PyTorch, each a fresh process (torchinfo must import torch, build the model and run a forward
   pass). The PyTorch model is archcalc's own export (`export_source`: plain torch code, no
   archcalc in torchinfo's process), and both tools must report the same parameter count.
2. Where torchinfo cannot go: a 10^11-parameter stack needs 400 GB of weights before torchinfo
   can start; it runs under a 16 GiB address-space limit so that it fails instead of swapping.
3. Scaling: generated chains of 10 to 100,000 layers, every layer one YAML line (the parser reads
   them all; no `repeat`): wall time, CPU time and peak memory of the table and the JSON outputs,
   with a least-squares line through them.
4. Exact at any size: a 10^12-parameter network, counted to the last weight, as fast as MNIST.
5. Cold start: the interpreter alone, `--help`, `inspect`, and what the imports cost.

Every timing is the median of several runs, interleaved between the commands so that a busy
machine slows them alike; CPU time (user + system) is beside the wall time because it is less
disturbed by other work. Bytecode is cached as in any installed package (PYTHONDONTWRITEBYTECODE
is dropped for the children, and every command runs once before it is timed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's archcalc

from archcalc.fileio import write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SIDE_BY_SIDE = ("vgg16", "alexnet", "resnet50")
LAYER_COUNTS = (10, 100, 1_000, 10_000, 100_000)
TORCHINFO_LIMIT = 16 * 2**30  # address space for the torchinfo run that cannot fit

TORCHINFO_PROBE = """
import importlib.util, re, sys
import torch, torchinfo
path, shape = sys.argv[1], tuple(int(d) for d in sys.argv[2].split("x"))
name = re.findall(r"^class (\\w+)\\(nn\\.Module\\):", open(path).read(), re.M)[-1]  # the network class
spec = importlib.util.spec_from_file_location("network", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(torchinfo.summary(getattr(module, name)(), input_size=(1, *shape), verbose=0))
"""


# --- processes ----------------------------------------------------------------------------------

def archcalc_command() -> list:
    """The installed console script, as the README runs it (else python -m archcalc)."""
    script = shutil.which("archcalc")
    return [script] if script else [sys.executable, "-m", "archcalc"]


def child_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the installed case: bytecode cached
    return env


# A forked child's peak memory counts its parent's pages from before exec, so every command is
# started by this small harness (python -S, ~8 MB) rather than by the benchmark itself.
# With a timeout, the harness kills the command when it runs past it (its exit code is then -9).
HARNESS = """
import json, os, resource, signal, sys, time
report, limit, timeout, argv = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(argv[0], argv)
if timeout:
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    json.dump({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
               "rss_kb": usage.ru_maxrss, "rc": os.waitstatus_to_exitcode(status)}, handle)
"""


def timed(argv: list, limit: int = 0, timeout: float = 0) -> dict:
    """One cold process: wall and CPU (user + system) seconds, peak resident kB, exit code, output;
    killed after ``timeout`` seconds if given (exit code -9)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        done = subprocess.run([sys.executable, "-S", "-c", HARNESS, str(report), str(limit), str(timeout), *argv],
                              capture_output=True, env=child_env(), cwd=ROOT)
        return {**json.loads(report.read_text()), "out": done.stdout.decode(errors="replace"),
                "err": done.stderr.decode(errors="replace")}


def measure(commands: dict, repeat: int) -> dict:
    """{label: {wall, cpu, rss_mb, rc, out, err}}: medians of ``repeat`` interleaved cold runs."""
    for argv in commands.values():  # warm-up: writes bytecode, fills the disk cache
        timed(argv)
    runs = {label: [] for label in commands}
    for _ in range(repeat):
        for label, argv in commands.items():
            runs[label].append(timed(argv))
    return {label: {"wall": statistics.median(r["wall"] for r in results),
                    "cpu": statistics.median(r["cpu"] for r in results),
                    "rss_mb": max(r["rss_kb"] for r in results) / 1024,
                    "rc": results[-1]["rc"], "out": results[-1]["out"], "err": results[-1]["err"],
                    "runs": len(results)}
            for label, results in runs.items()}


def checked(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        raise SystemExit(f"{what} failed (exit {result['rc']}):\n{result['err'][-2000:]}")
    return result


# --- the machine ----------------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = {}
    for package in ("archcalc", "torch", "torchinfo", "PyYAML", "click", "rich"):
        try:
            from importlib.metadata import version
            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - absent is a fine answer here
            versions[package] = "absent"
    import yaml
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "libyaml": bool(yaml.__with_libyaml__),
            "versions": versions, "commit": commit or "unknown", "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


# --- 1, 2: side by side with torchinfo ------------------------------------------------------------

def params_of_archcalc(spec: Path) -> tuple[int, str]:
    """(exact parameter count, input shape as 3x224x224) from archcalc's JSON output."""
    data = json.loads(checked(timed([*archcalc_command(), "inspect", str(spec), "-f", "json"]),
                              f"archcalc on {spec.name}")["out"])
    return data["totals"]["params"], "x".join(map(str, data["input_shape"]))


def torchinfo_params(output: str) -> int:
    return int(re.search(r"Total params: ([\d,]+)", output).group(1).replace(",", ""))


def exported(spec: Path, work: Path) -> Path:
    """archcalc's PyTorch export of the spec, written by a child (torch stays out of this process)."""
    target = work / f"{spec.stem}_torch.py"
    checked(timed([sys.executable, "-c", "import sys; from archcalc.backend import export_source; "
                   "open(sys.argv[2], 'w').write(export_source(sys.argv[1]))", str(spec), str(target)]),
            f"exporting {spec.name}")
    return target


def side_by_side(work: Path, repeat: int) -> list:
    probe = work / "torchinfo_probe.py"
    probe.write_text(TORCHINFO_PROBE)
    rows = []
    for name in SIDE_BY_SIDE:
        spec = ROOT / "specs" / f"{name}.yaml"
        if not spec.exists():
            continue
        model = exported(spec, work)
        params, shape = params_of_archcalc(spec)
        result = measure({"archcalc": [*archcalc_command(), "inspect", str(spec)],
                          "torchinfo": [sys.executable, str(probe), str(model), shape]}, repeat)
        ours, theirs = checked(result["archcalc"], "archcalc"), checked(result["torchinfo"], "torchinfo")
        if torchinfo_params(theirs["out"]) != params:
            raise SystemExit(f"{name}: torchinfo counts {torchinfo_params(theirs['out']):,} params, "
                             f"archcalc {params:,}: not the same network")
        rows.append({"spec": f"{name}.yaml", "params": params, "archcalc": _figures(ours),
                     "torchinfo": _figures(theirs), "ratio": theirs["wall"] / ours["wall"],
                     "cpu_ratio": theirs["cpu"] / ours["cpu"]})
        print(f"  {name}: archcalc {ours['wall']:.3f} s, torchinfo {theirs['wall']:.3f} s", flush=True)
    return rows


def beyond_memory(work: Path, repeat: int) -> dict:
    """A 10^11-parameter dense stack: archcalc's time, and how torchinfo fails to start."""
    spec = work / "stack_1e11.yaml"
    spec.write_text("name: dense stack of 10^11 parameters\ninput: [100000]\n"
                    "layers:\n" + "  - dense: 100000\n" * 10)
    params, shape = params_of_archcalc(spec)
    ours = checked(measure({"archcalc": [*archcalc_command(), "inspect", str(spec)]}, repeat)["archcalc"],
                   "archcalc")
    model = exported(spec, work)
    theirs = timed([sys.executable, str(work / "torchinfo_probe.py"), str(model), shape], limit=TORCHINFO_LIMIT)
    errors = [line for line in theirs["err"].splitlines() if "Error" in line]
    return {"params": params, "archcalc": _figures(ours), "torchinfo_rc": theirs["rc"],
            "torchinfo_wall": theirs["wall"], "torchinfo_error": errors[-1][:240] if errors else theirs["err"][-240:]}


def _figures(result: dict) -> dict:
    return {key: result[key] for key in ("wall", "cpu", "rss_mb", "runs")}


# --- 3, 4: scaling and exactness -------------------------------------------------------------------

def chain_spec(layers: int) -> str:
    """A chain of exactly ``layers`` layers, each written on its own line: conv, batchnorm, relu
    repeated on a 16x32x32 map ('same' padding keeps the size), then a pooled classifier."""
    body = ["conv: {filters: 16, kernel: 3, padding: same}", "batchnorm", "relu"]
    lines = [f"  - {body[i % 3]}" for i in range(layers - 2)] + ["  - globalavgpool", "  - dense: 10"]
    return f"name: chain of {layers:,} layers\ninput: [16, 32, 32]\nlayers:\n" + "\n".join(lines) + "\n"


def scaling(work: Path, counts: tuple, repeat: int) -> dict:
    points = []
    for count in counts:
        spec = work / f"chain_{count}.yaml"
        spec.write_text(chain_spec(count))
        runs = max(1, repeat if count <= 10_000 else repeat // 3)
        result = measure({fmt: [*archcalc_command(), "inspect", str(spec), "-f", fmt] for fmt in ("table", "json")},
                         runs)
        for fmt, figures in result.items():
            checked(figures, f"{count}-layer {fmt}")
            points.append({"layers": count, "format": fmt, **_figures(figures)})
        print(f"  {count:,} layers: table {result['table']['wall']:.3f} s, json {result['json']['wall']:.3f} s",
              flush=True)
    fits = {}
    for fmt in ("table", "json"):
        series = [p for p in points if p["format"] == fmt]
        fits[fmt] = {what: line([p["layers"] for p in series], [p[what] for p in series])
                     for what in ("wall", "cpu", "rss_mb")}
        fixed = series[0]["cpu"]  # the smallest chain: start-up and imports
        big = [p for p in series if p["layers"] >= 1_000 and p["cpu"] > fixed]
        fits[fmt]["exponent"] = loglog_slope([p["layers"] for p in big], [p["cpu"] - fixed for p in big])
    return {"points": points, "fits": fits}


def line(xs: list, ys: list) -> dict:
    """Least squares y = intercept + slope * x, with r^2."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    total = sum((y - mean_y) ** 2 for y in ys)
    return {"slope": slope, "intercept": intercept, "r2": 1 - residual / total if total else 1.0}


def loglog_slope(xs: list, ys: list) -> float:
    """The exponent k of y ~ x^k: 1 is linear growth (nan with fewer than two points)."""
    if len(xs) < 2:
        return float("nan")
    return line([math.log(x) for x in xs], [math.log(y) for y in ys])["slope"]


def exact_at_any_size(work: Path, repeat: int) -> dict:
    giant = work / "dense_1e12.yaml"
    giant.write_text("name: one dense layer of 10^12 weights\ninput: [1000000]\nlayers:\n  - dense: 1000000\n")
    small = ROOT / "specs" / "mnist_dense.yaml"
    params, _ = params_of_archcalc(giant)
    expected = 1_000_000 * 1_000_000 + 1_000_000  # weights + biases
    if params != expected:
        raise SystemExit(f"the 10^12 network counted {params:,} params, expected {expected:,}")
    result = measure({"giant": [*archcalc_command(), "inspect", str(giant)],
                      "small": [*archcalc_command(), "inspect", str(small)]}, repeat)
    return {"params": params, "giant": _figures(checked(result["giant"], "10^12")),
            "small": _figures(checked(result["small"], "mnist")), "small_params": params_of_archcalc(small)[0]}


# --- 5: cold start ----------------------------------------------------------------------------------

def cold_start(repeat: int) -> dict:
    vgg = str(ROOT / "specs" / "vgg16.yaml")
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "archcalc --help": [*archcalc_command(), "--help"],
                "archcalc inspect vgg16.yaml": [*archcalc_command(), "inspect", vgg],
                "archcalc inspect vgg16.yaml -f json": [*archcalc_command(), "inspect", vgg, "-f", "json"]}
    times = {label: _figures(checked(figures, label)) for label, figures in measure(commands, repeat).items()}
    profile = timed([sys.executable, "-X", "importtime", "-m", "archcalc", "inspect", vgg])["err"]
    return {"times": times, "imports": import_shares(profile)}


def import_shares(profile: str) -> list:
    """[(top-level import, cumulative ms)] from -X importtime, largest first."""
    shares = []
    for match in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", profile, re.M):
        if not match.group(2).startswith(" "):  # a top-level import (nested ones are indented)
            shares.append((match.group(2), int(match.group(1)) / 1000))
    return sorted(shares, key=lambda item: -item[1])[:8]


# --- the report --------------------------------------------------------------------------------------

def markdown(results: dict) -> str:
    m = results["machine"]
    out = ["# archcalc benchmarks", "",
           f"Measured {m['date']} by `python benchmarks/bench.py` at commit {m['commit']}.", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}; Python {m['python']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + f"; libyaml {'yes' if m['libyaml'] else 'no'}. Load average at start: "
           + ", ".join(f"{x:.2f}" for x in m["load_average"]) + ".", "",
           "Wall = median wall-clock seconds of whole cold processes (interleaved runs); CPU = median "
           "user + system seconds, less disturbed by other work on the machine; memory = peak resident "
           "set of the process.", ""]
    rows = results["side_by_side"]
    if rows:
        out += ["## archcalc inspect vs torchinfo.summary", "",
                "| spec | params (both agree) | archcalc wall | torchinfo wall | ratio | archcalc CPU | "
                "torchinfo CPU | archcalc memory | torchinfo memory |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            a, t = r["archcalc"], r["torchinfo"]
            out.append(f"| {r['spec']} | {r['params']:,} | {a['wall']:.3f} s | {t['wall']:.3f} s | "
                       f"**{r['ratio']:.1f}x** | {a['cpu']:.3f} s | {t['cpu']:.3f} s | {a['rss_mb']:.0f} MB | "
                       f"{t['rss_mb']:.0f} MB |")
        out += ["", f"Runs per figure: {rows[0]['archcalc']['runs']}. torchinfo runs on archcalc's own "
                "PyTorch export of the spec (plain torch code), with a 1-sample input.", ""]
    big = results.get("beyond_memory")
    if big:
        out += ["## Beyond memory", "",
                f"A stack of ten 100,000 x 100,000 dense layers, {big['params']:,} parameters "
                f"(400 GB of float32 weights): archcalc inspects it in {big['archcalc']['wall']:.3f} s "
                f"wall ({big['archcalc']['cpu']:.3f} s CPU, {big['archcalc']['rss_mb']:.0f} MB). torchinfo needs "
                f"the model built first; under a {TORCHINFO_LIMIT // 2**30} GiB address-space limit it stops "
                f"after {big['torchinfo_wall']:.1f} s (exit {big['torchinfo_rc']}):", "",
                f"    {big['torchinfo_error']}", "",
                "(Without the limit it would try to allocate the 400 GB.)", ""]
    scale = results["scaling"]
    out += ["## Scaling with the number of layers", "",
            "Chains of conv / batchnorm / relu on 16x32x32, every layer one line of YAML.", "",
            "| layers | table wall | table CPU | table memory | JSON wall | JSON CPU | JSON memory |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    by_count = {}
    for p in scale["points"]:
        by_count.setdefault(p["layers"], {})[p["format"]] = p
    for count, formats in by_count.items():
        t, j = formats["table"], formats["json"]
        out.append(f"| {count:,} | {t['wall']:.3f} s | {t['cpu']:.3f} s | {t['rss_mb']:.0f} MB | "
                   f"{j['wall']:.3f} s | {j['cpu']:.3f} s | {j['rss_mb']:.0f} MB |")
    out += ["", "Least-squares lines through all the sizes (time = fixed + per layer x layers):", ""]
    for fmt, fit in scale["fits"].items():
        out.append(f"- {fmt}: {fit['cpu']['slope'] * 1e6:.1f} µs of CPU per layer (+ {fit['cpu']['intercept']:.3f} s "
                   f"fixed, r² {fit['cpu']['r2']:.4f}); wall {fit['wall']['slope'] * 1e6:.1f} µs per layer; "
                   f"memory {fit['rss_mb']['slope'] * 1024:.2f} kB per layer (+ {fit['rss_mb']['intercept']:.0f} MB); "
                   f"growth exponent of the time beyond start-up, from 1,000 layers up: {fit['exponent']:.2f} "
                   f"(1 = linear)")
    exact = results["exact"]
    out += ["", "## Exact at any size", "",
            f"One dense layer of 10^6 x 10^6: archcalc counts **{exact['params']:,}** parameters "
            f"(10^12 weights + 10^6 biases, exactly) in {exact['giant']['wall']:.3f} s wall "
            f"({exact['giant']['cpu']:.3f} s CPU); MNIST's {exact['small_params']:,} take "
            f"{exact['small']['wall']:.3f} s ({exact['small']['cpu']:.3f} s CPU).", ""]
    cold = results["cold_start"]
    out += ["## Cold start", "", "| command | wall | CPU | memory |", "|---|---:|---:|---:|"]
    for label, f in cold["times"].items():
        out.append(f"| `{label}` | {f['wall']:.3f} s | {f['cpu']:.3f} s | {f['rss_mb']:.0f} MB |")
    out += ["", "Largest top-level imports of `archcalc inspect vgg16.yaml` (python -X importtime, "
            "cumulative ms; the profiler's own overhead inflates them, the shares are what matter):", ""]
    out += [f"- {name}: {ms:.1f} ms" for name, ms in cold["imports"]]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per figure (default 9)")
    parser.add_argument("--quick", action="store_true", help="3 repeats, up to 10,000 layers, no files written")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    counts = tuple(c for c in LAYER_COUNTS if c <= 10_000) if args.quick else LAYER_COUNTS
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="archcalc-bench-") as work:
        work = Path(work)
        has_torchinfo = results["machine"]["versions"]["torchinfo"] != "absent"
        print("side by side with torchinfo" + ("" if has_torchinfo else ": skipped, pip install torchinfo"))
        results["side_by_side"] = side_by_side(work, repeat) if has_torchinfo else []
        results["beyond_memory"] = beyond_memory(work, repeat) if has_torchinfo else None
        print("scaling")
        results["scaling"] = scaling(work, counts, repeat)
        print("exact at any size, cold start")
        results["exact"] = exact_at_any_size(work, repeat)
        results["cold_start"] = cold_start(repeat)
    text = markdown(results)
    print(text)
    if not args.quick:
        write_text(str(RESULTS / "bench.md"), text)
        write_text(str(RESULTS / "bench.json"), json.dumps(results, indent=2) + "\n")
        print(f"written: {RESULTS.relative_to(ROOT)}/bench.md and bench.json")


if __name__ == "__main__":
    main()
