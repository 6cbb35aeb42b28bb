"""inspect's inference peak is the memory schedule's, in every format, and it is what PyTorch allocates.

The course's rule (parameters + every layer's output, x2 for training) stays beside it, labelled as
the course's; the peak is pinned against the live bytes PyTorch holds while the model runs on the
CPU (backend/memtrack.measured_peaks), for a network whose kernels are the same on CPU and CUDA
(inspect plans for CUDA's): a residual block, where the skip's tensor is alive beside the branch.
"""
import html
import json

import pytest
from click.testing import CliRunner
from conftest import spec_text

import archcalc
from archcalc.cli import main
from archcalc.units import human_bytes

RESIDUAL = spec_text([3, 16, 16], "conv: {filters: 8, kernel: 3, padding: same, name: stem}",
                     "batchnorm", "relu", "conv: {filters: 8, kernel: 3, padding: same, name: branch}",
                     "add: {inputs: [stem, branch]}", "maxpool: 2", "flatten", "dense: 10")
BATCH = 3


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    written = tmp_path_factory.mktemp("peak") / "residual.yaml"
    written.write_text(RESIDUAL)
    return written


def test_the_inference_peak_is_what_pytorch_allocates(path):
    pytest.importorskip("torch")
    from archcalc.backend.memtrack import measured_peaks

    measured = measured_peaks(archcalc.analyze(archcalc.load(str(path)), batch=BATCH))["inference"]
    data = json.loads(CliRunner().invoke(main, ["inspect", str(path), "-b", str(BATCH), "-f", "json"]).output)
    assert data["inference"]["peak_bytes"] == measured
    assert data["inference"]["device"] == "cuda" and data["inference"]["peak_phase"] == "inference"
    text = CliRunner().invoke(main, ["inspect", str(path), "-b", str(BATCH)]).output
    assert f"inference peak: {human_bytes(measured)} at " in text


def test_every_format_labels_the_course_rule(path):
    """The old lines keep their numbers (parameters + activations, x2), labelled as the course's."""
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=BATCH)
    totals = analysis.totals
    forward = f"course's rule, forward pass: {human_bytes(totals.forward_bytes)} = parameters + activations"
    training = f"course's rule, training (x2): {human_bytes(2 * totals.forward_bytes)}"
    for fmt in ("table", "markdown", "html"):
        output = CliRunner().invoke(main, ["inspect", str(path), "-b", str(BATCH), "-f", fmt]).output
        output = html.unescape(output) if fmt == "html" else output
        assert forward in output and training in output and "inference peak: " in output, fmt
    data = json.loads(CliRunner().invoke(main, ["inspect", str(path), "-b", str(BATCH), "-f", "json"]).output)
    assert (data["totals"]["forward_bytes"], data["totals"]["training_bytes_estimate"]) == (
        totals.param_bytes + totals.buffer_bytes + totals.activation_bytes, 2 * totals.forward_bytes)
    assert "course's rule" in data["conventions"]["training_estimate"] and "inference_peak" in data["conventions"]


def test_a_spec_the_schedule_will_not_replay_keeps_every_other_figure(tmp_path):
    """inspect replays inference for its peak: where the schedule refuses (a gru of 2^63-1
    layers), every format still answers, and says why in the peak's place."""
    path = tmp_path / "endless.yaml"
    path.write_text(spec_text({"steps": 6, "features": 2}, "gru: {hidden: 3, layers: 9223372036854775807}"))
    why = "the memory schedule replays at most 20,000 tensor operations (about a second)"
    for fmt in ("table", "markdown", "csv", "html"):
        result = CliRunner().invoke(main, ["inspect", str(path), "-f", fmt])
        assert result.exit_code == 0, (fmt, result.output)
        assert (f"inference peak: not replayed: {why}" in html.unescape(result.output)) == (fmt != "csv"), fmt
    data = json.loads(CliRunner().invoke(main, ["inspect", str(path), "-f", "json"]).output)
    assert data["inference"] is None and data["inference_not_replayed"].startswith(why)
