"""Convolution as a matrix product: the course's examples (slides 157-164) and the buffer's bytes."""
import json

from click.testing import CliRunner
from conftest import spec_text

import archcalc
from archcalc.analysis.im2col import unrolled_layers
from archcalc.cli import main


def unrolled(input_shape, fragment, **options):
    analysis = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)), **options)
    (_, matrix), = unrolled_layers(analysis)
    return matrix


def test_course_examples():
    one = unrolled((1, 4, 4), "conv: {filters: 1, kernel: 3}")
    assert one.column_matrix() == (9, 4) and one.filter_matrix == (1, 9)      # slide 158: W0..W8 x 9x4
    assert one.output_matrix() == (1, 4)                                     # Y0..Y3
    assert one.column_matrix(batch=2) == (9, 8)                              # slides 159-160: mini-batch of 2
    two_filters = unrolled((1, 4, 4), "conv: {filters: 2, kernel: 3}")
    assert two_filters.filter_matrix == (2, 9) and two_filters.output_matrix() == (2, 4)  # slide 162
    two_channels = unrolled((2, 4, 4), "conv: {filters: 1, kernel: 3}")
    assert two_channels.column_matrix() == (18, 4) and two_channels.filter_matrix == (1, 18)  # slides 163-164


def test_groups_stride_and_bytes():
    matrix = unrolled((4, 9, 9), "conv: {filters: 6, kernel: 3, stride: 2, groups: 2}")
    assert matrix.filter_matrix == (6, 2 * 9)             # each filter sees C/g = 2 channels
    assert matrix.column_matrix(3) == (18, 16 * 3)        # 4x4 positions per sample, batch 3
    assert matrix.column_elements(3) == 2 * 18 * 48       # one block per group
    assert matrix.column_bytes(3, 2) == 2 * 2 * 18 * 48   # float16


def test_only_convolutions_unroll():
    analysis = archcalc.analyze(archcalc.loads(spec_text((3, 8, 8), "conv: {filters: 2, kernel: 3}", "maxpool: 2",
                                                         "flatten", "dense: 4")))
    assert [stats.name for stats, _ in unrolled_layers(analysis)] == ["conv1"]


def test_cli(tmp_path):
    spec = tmp_path / "course.yaml"
    spec.write_text(spec_text((2, 4, 4), "conv: {filters: 2, kernel: 3}"))
    runner = CliRunner()
    table = runner.invoke(main, ["inspect", str(spec), "--im2col", "--batch", "2"]).output
    assert "2x18" in table and "18x8" in table and "column buffer" in table
    data = json.loads(runner.invoke(main, ["inspect", str(spec), "--im2col", "-b", "2", "-f", "json"]).output)
    assert data["layers"][0]["im2col"] == {"filter_matrix": [2, 18], "column_matrix": [18, 8],
                                           "output_matrix": [2, 8], "groups": 1, "column_bytes": 18 * 8 * 4}
    markdown = runner.invoke(main, ["inspect", str(spec), "--im2col", "-f", "markdown"]).output
    assert "| conv1 | 2x18 | 18x4 | 2x4 | 1 | 288 B |" in markdown
