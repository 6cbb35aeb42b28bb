"""The plain table (pipes, files, networks of thousands of layers) is rich's table without the
colours: the same title, columns, alignment, notes, totals and units."""
import io
import time

import pytest
from conftest import SPECS, spec_text
from rich.console import Console

import archcalc
from archcalc.views import diff, output, report


def drawn_by_rich(blocks) -> list[str]:
    console = Console(file=io.StringIO(), width=400, color_system=None)  # wide: rich wraps nothing
    output.write_rich(blocks, console)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


@pytest.mark.parametrize("name,options", [("alexnet", {}), ("vgg16", {"batch": 2}), ("lenet5", {}),
                                          ("resnet18", {}),  # branches: 'add1 <- conv2, shortcut'
                                          ("cifar_stride3", {"rounding": "floor", "input_shape": (3, 33, 33)})])
def test_plain_layout_is_richs(name, options):
    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")), **options)
    blocks = report.table_report(analysis, None, report.Extras())
    assert output.plain_text(blocks).splitlines() == drawn_by_rich(blocks)


def test_diff_plain_layout_is_richs():
    a, b = (archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml"))) for name in ("alexnet", "alexnet_grouped"))
    blocks = diff.table_report(diff.diff(a, b))
    assert output.plain_text(blocks).splitlines() == drawn_by_rich(blocks)


def test_markup_in_a_name_is_shown_as_written():
    analysis = archcalc.analyze(archcalc.loads(spec_text([4], "dense: {units: 2, name: '[/oops]'}")))
    assert "[/oops]" in "\n".join(drawn_by_rich(report.table_report(analysis, None, report.Extras())))


@pytest.mark.slow
def test_a_100000_layer_table_prints_in_seconds():
    analysis = archcalc.analyze(archcalc.loads(spec_text([4, 8, 8], *["conv: {filters: 4, kernel: 3, padding: same}",
                                                                       "relu"] * 50_000)))
    start = time.process_time()
    text = output.plain_text(report.table_report(analysis, None, report.Extras()))
    assert time.process_time() - start < 10  # CPU seconds (1.2 s measured); rich took a minute
    assert text.count("\n") > 100_000 and "relu50000" in text
