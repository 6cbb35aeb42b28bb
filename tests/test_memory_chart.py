"""archcalc memory -o: the schedule's live bytes drawn as stacked bars (views/memorychart.py)."""
import re
import shutil
import xml.etree.ElementTree as ElementTree

import pytest
from conftest import SPECS, run_cli

import archcalc
from archcalc.analysis.schedule import schedule
from archcalc.units import human_bytes
from archcalc.views.memory import steps
from archcalc.views.memorychart import COLOURS

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


def bars(path) -> dict:
    """{tooltip: [(fill, height in points), ...]} of every bar drawn in the SVG."""
    found: dict = {}
    for anchor in ElementTree.parse(path).iter(f"{SVG}a"):
        title = anchor.get(f"{XLINK}title")
        for polygon in anchor.iter(f"{SVG}polygon"):
            ys = [float(point.split(",")[1]) for point in polygon.get("points").split()]
            found.setdefault(title, []).append((polygon.get("fill"), max(ys) - min(ys)))
    return found


@needs_dot
def test_every_step_is_a_stack_as_tall_as_its_live_bytes(tmp_path):
    """One stack per layer and phase, in the schedule's categories, each as tall as its live bytes
    against the peak (Graphviz places boxes to the point: 1 pt per box)."""
    out = tmp_path / "lenet5.svg"
    result = run_cli("memory", SPECS / "lenet5.yaml", "--train", "--optimizer", "sgd", "-b", 4, "-o", out)
    assert result.exit_code == 0, result.output
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "lenet5.yaml")), batch=4)
    drawn = bars(out)
    for plan in (schedule(analysis, device="cuda"), schedule(analysis, training=True, optimizer="sgd", device="cuda")):
        peak = plan.peak()
        for phase, layer, moment in steps(plan):
            total = moment.bytes(4)
            stack = drawn[next(title for title in drawn if title.startswith(f"{phase} {layer}: {human_bytes(total)};"))]
            visible_parts = [part for part, value in moment.parts(4).items() if 2.6 * 72 * value / peak >= 1]
            assert {fill for fill, _ in stack} >= {COLOURS[part].lower() for part in visible_parts}
            assert abs(sum(height for _, height in stack) - 2.6 * 72 * total / peak) <= len(stack)
    assert f"peak {human_bytes(plan.peak())} (backward, at conv1)" in out.read_text()


@needs_dot
def test_png_pdf_and_dot_on_standard_output(tmp_path):
    png, pdf = tmp_path / "m.png", tmp_path / "m.pdf"
    assert run_cli("memory", SPECS / "course_grey.yaml", "-o", png).exit_code == 0
    assert run_cli("memory", SPECS / "course_grey.yaml", "-o", pdf).exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")
    result = run_cli("memory", SPECS / "course_grey.yaml", "-o", "-")
    assert result.exit_code == 0 and result.stdout.startswith('digraph "')  # the text went to stderr
    assert "inference: peak" in result.stderr


@needs_dot
def test_a_hostile_layer_name_is_text_in_the_drawing(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text('name: "a\\" ] <b>x</b>"\ninput: [4]\nlayers:\n  - dense: {units: 3, name: "q\\"<i>&amp;"}\n')
    out = tmp_path / "m.svg"
    assert run_cli("memory", spec, "-o", out).exit_code == 0
    text = out.read_text()
    ElementTree.fromstring(text)  # well-formed: nothing the names hold became markup
    assert 'q"&lt;i&gt;&amp;amp;' in text.replace("&quot;", '"') and "<i>" not in text


@pytest.mark.parametrize("args, words", [
    (["--force"], "--force: does not apply here: it writes through -o"),
    (["-o", "m.jpg"], "cannot tell which format to draw from 'm.jpg'"),
    (["-o", "missing/m.svg"], "cannot write missing/m.svg"),
])
def test_refusals_write_nothing(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("memory", SPECS / "lenet5.yaml", *args)
    assert result.exit_code == 2 and words in result.output
    assert "peak" not in result.output and not re.search(r"\.(svg|jpg)", " ".join(p.name for p in tmp_path.iterdir()))
