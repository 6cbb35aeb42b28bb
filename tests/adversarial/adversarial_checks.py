"""Every command of the real CLI on one adversarial spec, and what must hold for each.

In process through click's CliRunner (``archcalc.cli.main``, the entry point of the ``archcalc``
script), in a directory of its own that holds only the spec and its mutated copy:
inspect in every format (table on standard output and with -o; JSON, markdown, CSV with -o), with
one set of extra options; explain; solve (text or JSON); render to DOT and SVG; diff against the
mutated copy (table and JSON); run on the CPU and on the meta device; memory; plan (table or JSON);
kinds (all, markdown, and one kind of the spec's or a hostile word); export, then the exported file
executed, its class built, and state dicts moved both ways between it and ``archcalc.backend.build``'s
model (strict) and, on the CPU, the same outputs computed. A sample of specs also goes through
``python -m archcalc`` in a subprocess, with rich on a pretend terminal (FORCE_COLOR), and the
exported file run by ``python`` alone.

What must hold, for every command:
- exit code 0 or 2, or 1 from run alone (PyTorch disagreed with the analyzer or refused a layer
  it accepted: the contract's exit code, recorded with its message for the report), never an
  uncaught exception, no "Traceback" in any output;
- plain-text output (tables, explain, solve, diff, run, markdown, every error) holds no control
  character but the newline: names are escaped, never sent raw to a terminal; every line on
  stderr is an error's or warning's headline, an indented hint or note, or 'wrote FILE';
- no file appears or changes in the directory but the one asked for with -o, and that one only
  on success (a drawing of an invalid spec is drawn up to the fault and exits 2);
- JSON parses; CSV parses, every row has the header's number of cells and no text cell starts as
  a spreadsheet formula (escape.csv_cell); every markdown table row has its header's number of
  cells; an SVG is one well-formed document; DOT is accepted by Graphviz and draws one graph;
- where run computed on the CPU, its numbers are inspect's: each layer's output shape and
  parameters in run's JSON equal those in inspect's JSON, and so do the totals;
- the exported file compiles without archcalc, holds the parameters export announced, and its
  state dict has build's keys and shapes and loads into build's model with strict=True, and it
  computes build's outputs wherever run computed them on the CPU.

The CPU steps (run --device cpu, executing the exported class with real tensors) are taken only
for networks of at most SMALL numbers (parameters + buffers, and activations): the meta device
checks the rest, so that a spec with 2^40 weights never allocates them on a shared machine.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import traceback
import xml.dom.minidom
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from adversarial_specs import Case, dump, mutated
from click.testing import CliRunner

import archcalc
from archcalc.cli import main
from archcalc.layers.shapes import parts

SMALL = 2_000_000
# what views/escape.py's CONTROL escapes, less the newline that ends lines
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
SUMMARY = re.compile(r"class (\w+), ([\d,]+) parameters")
# what stderr may hold: 'place: error: ...' or 'warning: ...' headlines, their indented hint and notes,
# 'wrote FILE (...)' and click's 'Aborted!'; a name's newline breaking a headline fails it
HEADLINE = re.compile(r"(.*?\b(error|warning): |  |wrote |Aborted!$)")
MEMORY_EXTRAS = [[], ["--train"], ["--train", "--optimizer", "sgd", "--device", "cpu"], ["--max-batch", "1GB"],
                 ["--no-timeline", "--batch", "3", "--dtype", "bfloat16"], ["--train", "--max-batch", "24GiB"]]
PLAN_EXTRAS = [[], ["--gpus", "1..8"], ["--mixed-precision", "bf16"], ["--optimizer", "sgd", "--gpus", "2..2"],
               ["--bandwidth", "400GB/s", "--throughput", "312TFLOPs/s"]]
# a word kinds must refuse (exit 2, one message) or find
KIND_WORDS = ["[/oops]", "\x1b[31mconv", "conv\n2d", "", "=1+1", "CONV2D", "Conv2D", "ReLU", "a" * 3000, "\u202econv"]
# a spreadsheet formula's first character (escape.FORMULA_START), and our numbers written as text
FORMULA = re.compile("[=+\\-@\t\r\n\x00]")
NUMBERS = re.compile(r"-+|-?\d+(\.\d+)?(x-?\d+(\.\d+)?)*")
INSPECT_EXTRAS = [[], ["--rf"], ["--train"], ["--im2col"], ["--depth", "1"], ["--max-batch", "1GB"],
                  ["--batch", "3", "--dtype", "float16"], ["--batch-axis", "--columns", "kind,output,params,trainable"],
                  ["--gpus", "4", "--shard", "fsdp"], ["--train", "--mixed-precision", "bf16"]]


@dataclass
class Report:
    """What one spec did: the exit code of each command, the failures, and what was learned."""

    seed: int
    codes: dict = field(default_factory=dict)         # command -> exit code
    failures: list = field(default_factory=list)      # (command, message)
    notes: Counter = field(default_factory=Counter)   # what was skipped
    refusals: dict = field(default_factory=dict)      # command -> the first line of its error (exit 2)
    disagreements: dict = field(default_factory=dict)  # run's exit 1 (PyTorch refused or disagreed): its message
    seconds: float = 0.0
    inspected: dict | None = None                     # inspect's JSON document, for run's numbers
    timings: Counter = field(default_factory=Counter)  # command -> seconds

    def fail(self, command: str, message: str):
        self.failures.append((command, message))


def snapshot(folder: Path) -> dict:
    return {path.name: (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino)
            for path in folder.iterdir()}


def plain(text: str) -> str | None:
    """The first control character of a plain-text output, shown, or None."""
    found = CONTROL.search(text)
    return None if found is None else f"{found.group()!r} at {found.start()}: {text[max(0, found.start() - 40):found.start() + 20]!r}"


class Session:
    """One spec's directory and the CliRunner that runs commands in it."""

    def __init__(self, folder: Path, report: Report):
        self.folder = folder
        self.report = report
        self.runner = CliRunner()

    def invoke(self, label: str, args: list, asked: str | None = None, plain_stdout: bool = True):
        """Run ``archcalc args`` and check the contract; returns (exit code, stdout, stderr)."""
        before = snapshot(self.folder)
        cwd = os.getcwd()
        os.chdir(self.folder)
        started = time.perf_counter()
        try:
            result = self.runner.invoke(main, args, catch_exceptions=True)
        finally:
            os.chdir(cwd)
            self.report.timings[label] += time.perf_counter() - started
        after = snapshot(self.folder)
        code, out, err = result.exit_code, result.stdout, result.stderr
        self.report.codes[label] = code
        if code == 2:
            self.report.refusals[label] = (err.strip().splitlines() or [""])[0]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            trace = "".join(traceback.format_exception(result.exception))
            self.report.fail(label, f"uncaught {type(result.exception).__name__}: {result.exception}\n{trace}")
            return code, out, err
        if code == 1 and args[0] == "run":  # the contract's disagreement: recorded, and read in the report
            self.report.disagreements[label] = (err.strip().splitlines() or [""])[-1]
        elif code not in (0, 2):
            self.report.fail(label, f"exit code {code}: {(err or out)[-2000:]}")
        for stream, text in (("stdout", out), ("stderr", err)):
            if "Traceback" in text:
                self.report.fail(label, f"a traceback on {stream}: {text[-2000:]}")
        if plain_stdout and (where := plain(out)):
            self.report.fail(label, f"a control character on stdout: {where}")
        if where := plain(err):
            self.report.fail(label, f"a control character on stderr: {where}")
        if stray := next((line for line in err.splitlines() if not HEADLINE.match(line)), None):
            self.report.fail(label, f"a line on stderr that is no error, warning or detail of one: {stray[:200]!r}")
        changed = {name for name in after if before.get(name) != after[name]} | (set(before) - set(after))
        allowed = {asked} if asked and (code == 0 or label.startswith("render")) else set()
        if changed - allowed:
            self.report.fail(label, f"files written or changed besides the output: {sorted(changed - allowed)} "
                                    f"(exit {code})")
        if asked and code == 0 and asked not in after:
            self.report.fail(label, f"exit 0 but {asked} was not written")
        return code, out, err

    def read(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")

    def discard(self, name: str):
        (self.folder / name).unlink(missing_ok=True)


def analysis_of(path: Path):
    try:
        return archcalc.analyze(archcalc.load(str(path)))
    except archcalc.SpecError:
        return None


def small(analysis) -> bool:
    """At most SMALL weights, and at most SMALL numbers in the inputs and the layers' outputs
    (a repeatvector or a flatten creates no neurons but still makes its output)."""
    totals = analysis.totals
    inputs = dict(analysis.spec.inputs) or {"input": analysis.input_shape}
    outputs = sum(map(prod, inputs.values())) + sum(prod(shape) for stats in analysis.layers
                                                    for shape in parts(stats.output_shape))
    return totals.params + totals.buffers <= SMALL and outputs <= SMALL


def check(case: Case, folder: Path, *, svg: bool = True, processes: bool = False) -> Report:
    """Every command on ``case`` in ``folder`` (an empty directory); the report of what happened."""
    started = time.perf_counter()
    report = Report(case.seed)
    (folder / "a.yaml").write_text(case.text, encoding="utf-8")
    (folder / "b.yaml").write_text(dump(mutated(case.document, case.seed), case.seed), encoding="utf-8")
    session = Session(folder, report)
    analysis = analysis_of(folder / "a.yaml")
    fits = analysis is not None and small(analysis)

    inspect(session, case)
    code, out, _ = session.invoke("explain", ["explain", "a.yaml"])
    code, out, _ = session.invoke("solve", ["solve", "a.yaml", *(["-f", "json"] if case.seed % 3 == 0 else [])],
                                  plain_stdout=case.seed % 3 != 0)
    if code == 0 and case.seed % 3 == 0:
        parsed(session, "solve", out, json.loads)
    render(session, svg)
    code, out, _ = session.invoke("diff", ["diff", "a.yaml", "b.yaml", *(["--all"] if case.seed % 2 else [])])
    code, out, _ = session.invoke("diff-json", ["diff", "a.yaml", "b.yaml", "-f", "json"], plain_stdout=False)
    if code == 0:
        parsed(session, "diff-json", out, json.loads)
    run(session, analysis, fits, case)
    memory(session, case)
    plan(session, case)
    kinds(session, case)
    export(session, analysis, fits)
    if processes:
        subprocesses(session, analysis, fits)
    report.seconds = time.perf_counter() - started
    return report


def parsed(session: Session, label: str, text: str, parse):
    try:
        parse(text)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the finding
        session.report.fail(label, f"output does not parse: {exc!r}: {text[:300]!r}")


def inspect(session: Session, case: Case):
    extras = INSPECT_EXTRAS[case.seed % len(INSPECT_EXTRAS)]
    session.invoke("inspect", ["inspect", "a.yaml", *extras])
    for fmt, name, parse, is_plain in (("table", "out.txt", None, True), ("json", "out.json", json.loads, False),
                                       ("markdown", "out.md", _markdown, True), ("csv", "out.csv", _csv, False)):
        label = f"inspect-{fmt}"
        code, _, _ = session.invoke(label, ["inspect", "a.yaml", "-f", fmt, "-o", name], asked=name)
        if code == 0 and (session.folder / name).exists():
            with open(session.folder / name, encoding="utf-8", newline="") as written:  # a CR in a CSV cell stays
                text = written.read()
            if parse is not None:
                parsed(session, label, text, parse)
            if fmt == "json" and code == 0:
                session.report.inspected = json.loads(text)
            if is_plain and (where := plain(text)):
                session.report.fail(label, f"a control character in {name}: {where}")
            session.discard(name)


def _csv(text: str):
    """Every row has the header's number of cells (the totals row too); no text cell starts as a
    spreadsheet formula but our numbers written as text ('-3x-3')."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError(f"rows of {sorted({len(row) for row in rows})} cells, the header {len(rows[0]) if rows else 0}")
    for row in rows:
        for cell in row:
            if FORMULA.match(cell) and not NUMBERS.fullmatch(cell):
                raise ValueError(f"a cell a spreadsheet would run as a formula: {cell[:80]!r}")


def markdown_cells(row: str) -> int:
    """How many cells a markdown table row has: the pipes no backslash escapes, less one."""
    count, escaped = 0, False
    for char in row.strip():
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            count += 1
    return count - 1


def _markdown(text: str):
    """Each table (a run of lines starting with '|') has its header's number of cells in every row,
    and its second line is the separator."""
    table: list = []
    for line in text.split("\n") + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            widths = [markdown_cells(row) for row in table]
            if len(table) < 2 or not re.fullmatch(r"\|( *:?-+:? *\|)+", table[1].replace(" ", "")):
                raise ValueError(f"a table without its separator line: {table[:2]!r}")
            if any(width != widths[0] for width in widths):
                row = next(row for row, width in zip(table, widths) if width != widths[0])
                raise ValueError(f"a row of {markdown_cells(row)} cells under a header of {widths[0]}: {row[:200]!r}")
        table = []


def render(session: Session, svg: bool):
    code, _, _ = session.invoke("render-dot", ["render", "a.yaml", "-o", "d.dot"], asked="d.dot")
    dot_text = session.read("d.dot") if (session.folder / "d.dot").exists() else None
    if dot_text is not None and svg:
        done = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=120)
        if done.returncode != 0:
            session.report.fail("render-dot", f"dot refuses the DOT written: {done.stderr.decode()[:500]}")
        elif done.stdout.count(b"<svg") != 1:
            session.report.fail("render-dot", f"the DOT written draws {done.stdout.count(b'<svg')} SVG documents")
    session.discard("d.dot")
    if not svg:
        return
    code, _, _ = session.invoke("render-svg", ["render", "a.yaml", "-o", "d.svg"], asked="d.svg")
    if (session.folder / "d.svg").exists():
        data = (session.folder / "d.svg").read_bytes()
        if data.count(b"<svg") != 1:
            session.report.fail("render-svg", f"{data.count(b'<svg')} SVG documents in one file")
        try:
            xml.dom.minidom.parseString(data)
        except Exception as exc:  # noqa: BLE001
            session.report.fail("render-svg", f"the SVG is not well-formed XML: {exc}")
        session.discard("d.svg")


def run(session: Session, analysis, fits: bool, case: Case):
    as_json = case.seed % 2 == 0
    fmt = ["-f", "json"] if as_json else []
    code, out, _ = session.invoke("run-meta", ["run", "a.yaml", "--device", "meta", *fmt], plain_stdout=not as_json)
    if code == 0 and as_json:
        parsed(session, "run-meta", out, json.loads)
    if analysis is not None and not fits:
        session.report.notes["run-cpu skipped: over the size for a shared CPU"] += 1
        return
    code, out, _ = session.invoke("run-cpu", ["run", "a.yaml", "--device", "cpu", "-f", "json"], plain_stdout=False)
    if code == 0:
        parsed(session, "run-cpu", out, json.loads)
        if session.report.inspected is not None:
            same_numbers(session, json.loads(out), session.report.inspected)


def same_numbers(session: Session, ran: dict, inspected: dict):
    """run's numbers (what PyTorch computed on the CPU) are inspect's: each layer's output shape
    and parameters, and the total parameters."""
    layers = {layer["name"]: layer for layer in inspected["layers"]}
    for layer in ran["layers"]:
        mine = layers.get(layer["name"])
        if mine is None:
            session.report.fail("run-cpu", f"run reports a layer inspect does not: {layer['name'][:100]!r}")
            continue
        if layer["actual_shape"] != mine["output_shape"] or layer["actual_params"] != mine["params"]:
            session.report.fail("run-cpu", f"layer {layer['name'][:100]!r}: run computed {layer['actual_shape']} and "
                                           f"{layer['actual_params']} parameters, inspect says {mine['output_shape']} "
                                           f"and {mine['params']}")
    if ran["totals"]["actual_params"] != inspected["totals"]["params"]:
        session.report.fail("run-cpu", f"run's total parameters {ran['totals']['actual_params']}, "
                                       f"inspect's {inspected['totals']['params']}")


def memory(session: Session, case: Case):
    session.invoke("memory", ["memory", "a.yaml", *MEMORY_EXTRAS[case.seed % len(MEMORY_EXTRAS)]])


def plan(session: Session, case: Case):
    as_json = case.seed % 2 == 1
    memory = ["80GB", "1MB", "24GiB", "1B"][case.seed // 2 % 4]
    code, out, _ = session.invoke("plan", ["plan", "a.yaml", "--gpu-memory", memory, *(["-f", "json"] if as_json else []),
                                           *PLAN_EXTRAS[case.seed % len(PLAN_EXTRAS)]], plain_stdout=not as_json)
    if code == 0 and as_json:
        parsed(session, "plan", out, json.loads)


def kinds(session: Session, case: Case):
    """One kind of the spec's (as written, aliases too), or a word kinds must refuse; every kind in
    markdown for one spec in 20 (the table's rows checked like inspect's)."""
    words = sorted(case.kinds) + KIND_WORDS
    word = words[case.seed % len(words)]
    session.invoke("kinds", ["kinds", word])
    if case.seed % 20 == 0:
        code, out, _ = session.invoke("kinds-markdown", ["kinds", "--markdown"])
        if code == 0:
            parsed(session, "kinds-markdown", out, _markdown)


def export(session: Session, analysis, fits: bool):
    code, out, err = session.invoke("export", ["export", "a.yaml", "-o", "model.py"], asked="model.py")
    if code != 0 or not (session.folder / "model.py").exists():
        return
    source = session.read("model.py")
    try:
        # outputs are compared where run computed them on the CPU: PyTorch's own limits (lrn's padded
        # copy of 2^31 channels) are run's disagreements, recorded there
        computes = fits and session.report.codes.get("run-cpu") == 0
        exported_matches_build(source, out + err, session.folder / "a.yaml", analysis, fits, computes)
        session.report.codes["export-executed"] = 0
    except Exception as exc:  # noqa: BLE001 - any failure of the exported code is the finding
        session.report.fail("export-executed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}")
    session.discard("model.py")


def exported_matches_build(source: str, announced: str, spec: Path, analysis, fits: bool, computes: bool):
    """The exported file runs without archcalc; its class has the parameters announced and build's
    state dict, loadable both ways with strict=True; where ``computes``, both compute the same
    outputs on the CPU."""
    import torch

    from archcalc.backend import build
    from archcalc.backend.plan import make_plan
    from archcalc.backend.tensors import sample_inputs

    if re.search(r"^\s*(import|from)\s+archcalc", source, re.M):
        raise AssertionError("the exported file imports archcalc")
    summary = SUMMARY.search(announced)
    assert summary, f"export did not say what it wrote: {announced!r}"
    class_name, params = summary.group(1), int(summary.group(2).replace(",", ""))
    namespace: dict = {"__name__": "exported"}
    exec(compile(source, "model.py", "exec"), namespace)  # noqa: S102 - the code under test
    device = "cpu" if fits else "meta"
    torch.manual_seed(1)
    with torch.device(device):
        exported = namespace[class_name]()
    built = build(str(spec), device=device, seed=0)
    assert sum(p.numel() for p in exported.parameters()) == params == analysis.totals.params, \
        (sum(p.numel() for p in exported.parameters()), params, analysis.totals.params)
    theirs, ours = exported.state_dict(), built.state_dict()
    assert list(theirs) == list(ours), f"state dict keys differ: {list(theirs)[:8]} vs {list(ours)[:8]}"
    for key in ours:
        assert theirs[key].shape == ours[key].shape, f"{key}: {tuple(theirs[key].shape)} vs {tuple(ours[key].shape)}"
    exported.load_state_dict(ours, strict=True)
    built.load_state_dict(exported.state_dict(), strict=True)
    if not computes:
        return
    exported.eval()
    built.eval()
    inputs = sample_inputs(torch, make_plan(analysis), 2, torch.float32, "cpu", None)
    with torch.no_grad():
        mine, theirs_out = built(*inputs), exported(*inputs)
    mine = mine if isinstance(mine, tuple) else (mine,)
    theirs_out = theirs_out if isinstance(theirs_out, tuple) else (theirs_out,)
    assert len(mine) == len(theirs_out)
    for a, b in zip(mine, theirs_out):
        torch.testing.assert_close(b, a, rtol=0, atol=0, equal_nan=True)


def subprocesses(session: Session, analysis, fits: bool):
    """The real process: rich on a pretend terminal of a random width, then the exported file run
    by python alone."""
    environment = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": str(40 + session.report.seed % 160),
                   "PYTHONIOENCODING": "utf-8"}
    for label, args in (("process-inspect", ["inspect", "a.yaml"]), ("process-explain", ["explain", "a.yaml"]),
                        ("process-diff", ["diff", "a.yaml", "b.yaml"]),
                        ("process-run", ["run", "a.yaml", "--device", "meta"]),
                        ("process-export", ["export", "a.yaml", "-o", "-"])):
        done = subprocess.run([sys.executable, "-m", "archcalc", *args], cwd=session.folder, env=environment,
                              capture_output=True, timeout=600)
        session.report.codes[label] = done.returncode
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        if done.returncode not in (0, 2) and not (done.returncode == 1 and args[0] == "run"):
            session.report.fail(label, f"exit code {done.returncode}: {err[-2000:]}")
        if "Traceback" in out + err:
            session.report.fail(label, f"a traceback: {(out + err)[-2000:]}")
        if "\x1b]8;" in out + err:
            session.report.fail(label, "a terminal hyperlink (OSC 8) in the output")
        if label == "process-export" and done.returncode == 0:
            (session.folder / "model.py").write_bytes(done.stdout)
            if fits:
                script = done.stdout.decode() + f"\n{SUMMARY.search(err).group(1)}()\n"
                ran = subprocess.run([sys.executable, "-I", "-c", script], cwd=session.folder, capture_output=True,
                                     timeout=600)
                session.report.codes["process-exported-file"] = ran.returncode
                if ran.returncode != 0:
                    session.report.fail("process-exported-file", ran.stderr.decode("utf-8", "replace")[-2000:])
            session.discard("model.py")
