"""The plain table (pipes, files, networks of thousands of layers) is rich's table without the
colours: the same title, columns, alignment, notes, totals and units."""
import io
import time

import pytest
from conftest import SPECS, spec_text
from rich.console import Console

import archcalc
from archcalc.views import report


@pytest.mark.parametrize("name,options", [("alexnet", {}), ("vgg16", {"batch": 2}), ("lenet5", {}),
                                          ("cifar_stride3", {"rounding": "floor", "input_shape": (3, 33, 33)})])
def test_plain_layout_is_richs(name, options):
    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")), **options)
    console = Console(file=io.StringIO(), width=250, color_system=None)  # wide: rich wraps nothing
    report.rich_report(analysis, None, report.Extras(), console)
    drawn_by_rich = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert report.plain_report(analysis, None, report.Extras()).splitlines() == drawn_by_rich


@pytest.mark.slow
def test_a_100000_layer_table_prints_in_seconds():
    analysis = archcalc.analyze(archcalc.loads(spec_text([4, 8, 8], *["conv: {filters: 4, kernel: 3, padding: same}",
                                                                       "relu"] * 50_000)))
    start = time.perf_counter()
    text = report.plain_report(analysis, None, report.Extras())
    assert time.perf_counter() - start < 10  # rich took a minute
    assert text.count("\n") > 100_000 and "relu50000" in text
