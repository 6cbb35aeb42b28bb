"""The long adversarial run: thousands of specs from tests/adversarial/adversarial_specs.py through
every command (tests/adversarial/adversarial_checks.py), results in
benchmarks/results/adversarial_long_run.md.

    python scripts/adversarial_run.py --start 0 --count 5000        # in one go
    python scripts/adversarial_run.py --start 0 --count 1000 --no-report   # in chunks, then
    python scripts/adversarial_run.py --report-only                 # the report of every chunk logged

Each spec's outcome is one JSON line in the log (--log, repeatable: the logs of chunks run side by
side are read together), so chunks add up and an interrupted run keeps what it did. The report's
closing section, "## Defects found and fixed" (written by hand: each defect, its fix and its
regression test), is kept when the report is written again. A spec that runs past --spec-timeout seconds is a failure (runaway work), and
the process runs under an address-space limit (--memory-limit) so that a runaway allocation is a
MemoryError, not a shared machine out of memory. A failing spec is shrunk (layers and top-level
keys dropped while the same command still fails) and the report shows the smallest one; a spec
that ran out of time is reported as drawn (shrinking it would cost that time again per step). A
spec of the subprocess sample gets four times --spec-timeout: each of its six processes imports
archcalc, and the exported file torch, afresh.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "adversarial"))
sys.path.insert(0, str(ROOT))

from adversarial_checks import Report, check  # noqa: E402
from adversarial_specs import Case, case  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "adversarial_long_run.md"
LOG = Path(tempfile.gettempdir()) / "archcalc_adversarial_run.jsonl"  # the chunks add up here


class Runaway(Exception):
    pass


def _alarm(signum, frame):
    raise Runaway


def checked(drawn: Case, seconds: int, svg: bool, processes: bool) -> Report:
    """check() in a fresh directory, stopped after ``seconds`` (a failure of its own)."""
    with tempfile.TemporaryDirectory(prefix="adversarial") as folder:
        signal.alarm(seconds * (4 if processes else 1))
        try:
            return check(drawn, Path(folder), svg=svg, processes=processes)
        except Runaway:
            report = Report(drawn.seed)
            report.fail("timeout", f"over {seconds} s")
            return report
        except MemoryError:
            report = Report(drawn.seed)
            report.fail("memory", "MemoryError: over the address-space limit")
            return report
        finally:
            signal.alarm(0)


def shrink(drawn: Case, command: str, seconds: int, processes: bool) -> str:
    """The smallest spec found that still fails ``command``: layers, then top-level keys, dropped one
    at a time while the failure stays."""
    document = copy.deepcopy(drawn.document)

    def still_fails(candidate: dict) -> bool:
        trial = Case(drawn.seed, candidate, drawn.invalid, drawn.kinds)
        return any(label == command for label, _ in checked(trial, seconds, True, processes).failures)

    changed = True
    while changed:
        changed = False
        for index in range(len(document["layers"]) - 1, -1, -1):
            if len(document["layers"]) == 1:
                break
            candidate = copy.deepcopy(document)
            del candidate["layers"][index]
            if still_fails(candidate):
                document, changed = candidate, True
        for key in [key for key in document if key not in ("input", "inputs", "layers")]:
            candidate = {k: v for k, v in document.items() if k != key}
            if still_fails(candidate):
                document, changed = candidate, True
    return Case(drawn.seed, document, drawn.invalid, drawn.kinds).text


def run(start: int, count: int, log: Path, seconds: int, every: int):
    with log.open("a", encoding="utf-8") as out:
        for seed in range(start, start + count):
            drawn = case(seed)
            processes = seed % every == 0
            report = checked(drawn, seconds, svg=True, processes=processes)
            record = {"seed": seed, "codes": report.codes, "failures": report.failures, "notes": report.notes,
                      "refusals": report.refusals,
                      "disagreements": report.disagreements, "seconds": round(report.seconds, 3),
                      "timings": {k: round(v, 3) for k, v in report.timings.items()}, "spoiled": drawn.invalid,
                      "kinds": sorted(drawn.kinds), "layers": len(drawn.document["layers"])}
            if report.failures and report.failures[0][0] != "timeout":
                record["minimal"] = shrink(drawn, report.failures[0][0], seconds, processes)
                print(f"seed {seed}: {report.failures[0][0]}: {report.failures[0][1][:300]}", flush=True)
            out.write(json.dumps(record, ensure_ascii=True) + "\n")
            out.flush()
            if seed % 50 == 0:
                print(f"seed {seed} done", flush=True)


def masked(message: str) -> str:
    """An error's first line with its place, layer name, quoted words and numbers masked, to group
    like refusals. A layer name may hold ': ' itself: it ends at the first ': ' followed by words."""
    message = re.sub(r"^(.*?: )?error: ", "", message)
    if message.startswith("layer "):
        for found in re.finditer(": ", message):
            rest = message[found.end():]
            if re.match(r"[a-z_]+( |: )", rest):
                message = "layer _: " + rest
                break
    message = re.sub(r"inputs \(.*\)", "inputs (_)", message)  # solve's list of the input names
    message = re.sub(r"'[^']*'|\"[^\"]*\"|-?\d[\d,.]*(e[+-]?\d+)?", "_", message)
    return message[:110]


DEFECTS = "## Defects found and fixed"


def report_text(logs: list, command: str, commit: str, defects: str = "") -> str:
    records = [json.loads(line) for log in logs for line in log.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    records.sort(key=lambda record: record["seed"])
    codes: dict = defaultdict(Counter)
    times: Counter = Counter()
    notes: Counter = Counter()
    refusals: dict = defaultdict(Counter)
    failures = [record for record in records if record["failures"]]
    for record in records:
        for label, code in record["codes"].items():
            codes[label][code] += 1
        times.update(record["timings"])
        notes.update(record["notes"])
        if record["codes"].get("inspect") == 0:  # refused after the static analysis accepted the spec
            for label, message in record["refusals"].items():
                if not label.startswith(("diff", "process-diff", "kinds")):  # of the mutated copy; of a hostile word
                    refusals[masked(message)][label] += 1
    seconds = [record["seconds"] for record in records]
    analyzed = sum(record["codes"].get("inspect") == 0 for record in records)
    exported = sum(record["codes"].get("export-executed") == 0 for record in records)
    spoiled = sum(bool(record["spoiled"]) for record in records)
    seeds = ", ".join(f"{first}..{last}" for first, last in _runs([record["seed"] for record in records])) or "none"
    lines = [
        "# The long adversarial run", "",
        f"    {command}", "",
        f"Written {datetime.date.today().isoformat()} at commit {commit}, Python {platform.python_version()}, "
        f"on {platform.machine()} ({_cpu()}), shared with other work.", "",
        f"**{len(records):,} specs** (seeds {seeds}), **{len(failures)} failing**. "
        f"{analyzed:,} analyzed (`inspect` exit 0), {exported:,} exported and their file executed, state dicts "
        f"moved both ways with build's; {spoiled:,} had one argument spoiled on purpose. "
        f"Time: {sum(seconds) / 60:.0f} min in all, median {statistics.median(seconds):.2f} s per spec, "
        f"slowest {max(seconds):.1f} s." if records else "No specs run.", "",
        "## Exit codes per command", "",
        "| command | 0 | 1 | 2 | other | seconds |", "|---|---:|---:|---:|---:|---:|",
    ]
    for label in sorted(codes):
        counts = codes[label]
        other = sum(n for code, n in counts.items() if code not in (0, 1, 2))
        lines.append(f"| {label} | {counts.get(0, 0):,} | {counts.get(1, 0):,} | {counts.get(2, 0):,} | "
                     f"{other:,} | {times[label]:.0f} |")
    lines += ["", "`export-executed`: the exported file compiled and executed, its class built (on the CPU up to "
              "2,000,000 numbers, else on the meta device), parameters as announced, state dict keys and shapes "
              "equal to build's, loaded both ways with strict=True, and on the CPU the same outputs in eval mode. "
              "`process-*`: `python -m archcalc` in a subprocess with FORCE_COLOR (one spec in 500); "
              "`process-exported-file`: the exported file run by `python -I` alone. `run-cpu` exit 0 also "
              "means its shapes and parameters equal inspect's JSON; `inspect-csv` and `inspect-markdown` exit 0, "
              "rows of their header's width and no CSV cell a spreadsheet would run as a formula.", ""]
    if notes:
        lines += ["Skipped: " + "; ".join(f"{note}: {n:,}" for note, n in notes.most_common()) + ".", ""]
    lines += ["## Refusals after the static analysis accepted the spec", "",
              "What a later command refused (exit 2) when `inspect` had analyzed the spec (diff and kinds aside: "
              "theirs are of the mutated copy, of a word drawn to be refused); names and numbers masked.",
              "", "| message | commands |", "|---|---|"]
    for message, labels in sorted(refusals.items(), key=lambda item: -sum(item[1].values()))[:25]:
        shown = message.replace("|", "\\|")
        lines.append(f"| {shown} | " + ", ".join(f"{label} {n:,}" for label, n in labels.most_common()) + " |")
    disagreements = [(record["seed"], label, message) for record in records
                     for label, message in record.get("disagreements", {}).items()]
    lines += ["", "## run's disagreements (exit 1)", "",
              "Where PyTorch refused a layer the analyzer accepted, or computed another shape or count: the "
              "contract's exit code 1, and each a finding to read.", ""]
    lines += [f"- seed {seed}, {label}: `{message}`" for seed, label, message in disagreements] or ["None."]
    lines += ["", "## Failures", ""]
    if not failures:
        lines.append("None.")
    for record in failures:
        label, message = record["failures"][0]
        lines += [f"### seed {record['seed']}: {label}", "", "```text", message[:1500], "```", "",
                  "smallest spec found:" if "minimal" in record else "the spec:", "", "```yaml",
                  record.get("minimal", _spec_text(record["seed"])).rstrip(), "```", ""]
    if defects:
        lines += ["", defects.rstrip()]
    return "\n".join(lines) + "\n"


def _runs(seeds: list) -> list:
    """Sorted seeds as (first, last) of each unbroken run: chunks run side by side and stopped
    together leave several."""
    runs: list = []
    for seed in seeds:
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return runs


def _spec_text(seed: int) -> str:
    return case(seed).text


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {len(_cores())} cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> list:
    return [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("processor")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--count", type=int, default=5000, help="specs to run")
    parser.add_argument("--log", type=Path, action="append", help="JSON lines, one per spec (appended; "
                        f"repeatable for the report) [default: {LOG}]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the markdown report")
    parser.add_argument("--process-every", type=int, default=500,
                        help="one spec in this many also through python -m archcalc in subprocesses")
    parser.add_argument("--spec-timeout", type=int, default=300, help="seconds per spec")
    parser.add_argument("--memory-limit", type=int, default=12, help="address space in GiB (0: none)")
    parser.add_argument("--no-report", action="store_true", help="run, write no report (a chunk)")
    parser.add_argument("--report-only", action="store_true", help="write the report of the log, run nothing")
    parser.add_argument("--commit", default=None, help="the commit the report names (default: git's HEAD)")
    parser.add_argument("--command", default="python scripts/adversarial_run.py --start 0 --count 5000",
                        help="the command line the report names")
    options = parser.parse_args()
    options.log = options.log or [LOG]
    if options.memory_limit:
        limit = options.memory_limit * 2**30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    if not options.report_only:
        started = time.perf_counter()
        run(options.start, options.count, options.log[0], options.spec_timeout, options.process_every)
        print(f"{options.count} specs in {time.perf_counter() - started:.0f} s", flush=True)
    if not options.no_report:
        commit = options.commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                  capture_output=True, text=True).stdout.strip()
        before = options.out.read_text(encoding="utf-8") if options.out.exists() else ""
        defects = before[before.index(DEFECTS):] if DEFECTS in before else ""
        options.out.write_text(report_text(options.log, options.command, commit, defects), encoding="utf-8")
        print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
