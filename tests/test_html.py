"""inspect -f html: one self-contained page. Its figures are the course's (AlexNet's CONV1 is
11x11x3x96 + 96 = 34,944 parameters and 55x55 after (227-11)/4+1; stride 3 makes POOL2's
(36-3)/2+1 = 17.5), read back from the page as a browser's parser reads it; every name a spec can
hold stays text."""
import base64
import hashlib
import re
import shutil
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from conftest import SPECS
from test_names import HOSTILE, hostile_yaml

import archcalc
from archcalc.cli import main

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot program is not installed (apt-get install graphviz; "
                                      ".ci/run installs it)")


class Page(HTMLParser):
    """What a browser would build: elements by tag (with attributes), the text of each table row,
    the scripts' and styles' text, and every URL the page would load."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list = []
        self.rows: list = []       # (attributes of the <tr>, [cell texts])
        self.scripts: list = []
        self.titles: list = []     # <title> texts inside the SVG: the box ids
        self.boards: dict = {}     # data-box -> the hidden board's text
        self._stack: list = []
        self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._stack.append([tag, attrs, ""])
        if tag == "tr":
            self.rows.append((attrs, []))
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        while self._stack:
            name, attrs, text = self._stack.pop()
            if self._stack:
                self._stack[-1][2] += text
            if name == tag:
                break
        if tag in ("td", "th") and self.rows:
            self.rows[-1][1].append(self._cell)
            self._cell = None
        if tag == "script":
            self.scripts.append(text)
        if tag == "title" and any(t == "svg" for t, _, _ in self._stack):
            self.titles.append(text)
        if tag == "pre" and "data-box" in attrs:
            self.boards[attrs["data-box"]] = text

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][2] += data
        if self._cell is not None:
            self._cell += data

    def urls(self) -> list:
        return [value for _, attrs in self.tags for key, value in attrs.items()
                if key in ("src", "href", "xlink:href", "action", "data") and value]

    def row(self, name: str) -> list:
        return next(cells for _, cells in self.rows if cells and cells[0] == name)


def inspect(*args):
    result = CliRunner().invoke(main, ["inspect", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_report_html_is_one_offline_page_with_the_course_figures(tmp_path):
    out = tmp_path / "report.html"
    result = inspect(SPECS / "alexnet.yaml", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} (HTML, ")
    text = out.read_text()
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>")
    assert page.urls() == []  # nothing to fetch: no script, style, image or font from anywhere
    assert not re.search(r"url\(|@import|https?://", "".join(page.scripts) + text.split("<style>")[1].split(
        "</style>")[0])
    conv1 = page.row("CONV1")
    assert "96x55x55" in conv1 and "34,944" in conv1 and "(227-11+2*0)/4+1 = 55" in conv1
    assert page.row("FC6")[4] == "37,752,832"  # 9216 x 4096 + 4096
    assert "params: 62,378,344" in text
    assert "neurons = 55x55x96 = 290,400" in page.boards[page.rows[1][0]["data-boxes"]]


@needs_dot
def test_every_layer_row_names_a_box_of_the_inline_diagram_and_a_board(tmp_path):
    out = tmp_path / "report.html"
    assert inspect(SPECS / "resnet18.yaml", "-o", out).exit_code == 0
    page = Page(out.read_text())
    rows = [attrs["data-boxes"] for attrs, _ in page.rows if "data-boxes" in attrs]
    assert len(rows) == len(set(rows)) == len(archcalc.analyze(archcalc.load(SPECS / "resnet18.yaml")).layers)
    assert set(rows) <= set(page.titles)  # hover a box -> its row, and back
    assert set(rows) == set(page.boards)
    assert any(tag == "svg" for tag, _ in page.tags)


def test_the_script_is_the_only_one_allowed_to_run(tmp_path):
    out = tmp_path / "report.html"
    assert inspect(SPECS / "lenet5.yaml", "-o", out).exit_code == 0
    text = out.read_text()
    page = Page(text)
    policy = next(attrs["content"] for tag, attrs in page.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_invalid_spec_page_shows_the_failing_layer_in_red_with_its_fix(tmp_path):
    spec = tmp_path / "alexnet.yaml"
    spec.write_text((SPECS / "alexnet.yaml").read_text().replace("stride: 4", "stride: 3"))
    out = tmp_path / "report.html"
    result = inspect(spec, "-o", out)
    assert result.exit_code == 2  # as inspect exits for an invalid spec; the page is still written
    assert f"{spec}:16:34: error: layer POOL2" in result.output
    assert f"shown in red in the page: {out}" in result.output
    page = Page(out.read_text())
    banner = next(attrs for tag, attrs in page.tags if attrs.get("class") == "ac-error")
    assert (banner["data-line"], banner["data-column"]) == ("16", "34")
    invalid = next(cells for attrs, cells in page.rows if attrs.get("class") == "ac-invalid")
    assert invalid[0] == "POOL2" and "(36-3+2*0)/2+1 = 17.5" in invalid[1] and "try padding: same (-> 18)" in invalid[1]
    assert page.row("CONV1")[2] == "96x73x73"  # (227-11)/3+1: the layers before it, as computed
    assert not any(cells and cells[0] == "CONV3" for _, cells in page.rows)


def test_html_to_standard_output_and_by_format(tmp_path):
    result = inspect(SPECS / "lenet5.yaml", "--format", "html")
    assert result.exit_code == 0 and result.stdout.startswith("<!DOCTYPE html>")
    refused = inspect(SPECS / "lenet5.yaml", "--format", "html", "-o", tmp_path / "r.json")
    assert refused.exit_code == 2 and "names JSON" in refused.output


def test_without_dot_the_page_says_so_in_place_of_the_diagram(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "report.html"
    result = inspect(SPECS / "lenet5.yaml", "-o", out)
    assert result.exit_code == 0
    assert "warning: the page has no diagram: drawing SVG needs Graphviz's 'dot' program" in result.output
    page = Page(out.read_text())
    assert not any(tag == "svg" for tag, _ in page.tags)
    assert "apt-get install graphviz" in out.read_text()


@needs_dot
def test_every_name_stays_text(tmp_path):
    names = [*HOSTILE[:-1], "<script>alert(1)</script>", "</pre><img src=x onerror=alert(2)>",
             "x\" onmouseover=\"alert(3)", "l" * 300]
    spec = tmp_path / "hostile.yaml"
    spec.write_text(hostile_yaml(names, network="</title><script>alert(4)</script>"))
    out = tmp_path / "report.html"
    assert inspect(spec, "-o", out).exit_code == 0
    page = Page(out.read_text())
    assert len(page.scripts) == 1 and "alert" not in page.scripts[0]
    assert page.urls() == []
    assert not [attrs for _, attrs in page.tags if any(key.startswith("on") for key in attrs)]
    shown = [cells[0] for attrs, cells in page.rows if "data-boxes" in attrs]
    assert "<script>alert(1)</script>" in shown and "</pre><img src=x onerror=alert(2)>" in shown
    assert "line\\nbreak" in shown  # a control character written out, as in every view
    assert "<title>&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt; · archcalc</title>" in out.read_text()


def test_the_sections_asked_for_are_in_the_page(tmp_path):
    out = tmp_path / "alexnet.html"
    assert inspect(SPECS / "alexnet.yaml", "--im2col", "--train", "-o", out).exit_code == 0
    page = Page(out.read_text())
    unrolled = [cells for _, cells in page.rows if cells and cells[0] == "CONV1"][-1]  # the im2col table's row
    assert unrolled[1:4] == ["96x363", "363x3025", "96x3025"]  # CS231n's im2col of AlexNet's CONV1
    assert "training memory (adam, float32, batch 1, cuda kernels)" in out.read_text()
    out = tmp_path / "rnn.html"
    assert inspect(SPECS / "min_char_rnn.yaml", "--steps", "25", "-o", out).exit_code == 0
    assert "per token, T = 25: 23.00 kMACs" in out.read_text()  # min-char-rnn: 23,000 MACs per character


def test_the_memory_peaks_are_archcalc_memorys(tmp_path):
    out = tmp_path / "alexnet.html"
    assert inspect(SPECS / "alexnet.yaml", "-o", out).exit_code == 0
    memory = CliRunner().invoke(main, ["memory", str(SPECS / "alexnet.yaml"), "--train", "--no-timeline"]).output
    peaks = [line for line in memory.splitlines() if "peak" in line and not line.startswith(" ")]
    assert len(peaks) == 2 and all(f"<li>{line}</li>" in out.read_text() for line in peaks)
