"""What the output says about its numbers is stated once (analysis/conventions.py), agrees with
the numbers themselves, and reaches every format: table, JSON, markdown, diff, run, explain."""
import json
import re

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

import archcalc
from archcalc.analysis.conventions import footnote, kinds_with_macs, kinds_without_neurons
from archcalc.choices import REPORT_FORMATS
from archcalc.cli import main
from archcalc.layers import REGISTRY
from archcalc.layers.activation import Activation
from archcalc.views.output import JSON_SCHEMA_VERSION


def listed(kind: str, kinds: list) -> bool:
    """A kind is listed itself or through its registered parent kind (conv1d through conv)."""
    return any(issubclass(REGISTRY[kind], REGISTRY[name]) for name in kinds)


def test_the_kinds_that_were_missing_are_listed():
    # the course: a layer that only passes values on (concat places them side by side, repeatvector
    # copies one vector to every step) creates no neurons; a transposed convolution multiplies by its
    # weights like a convolution (torchvision and fvcore count its MACs); attention's projections and its
    # two products Q Kᵀ and A V are matrix products that FlopCounterMode counts
    assert {"concat", "repeatvector", "flatten", "dropout", "relu", "softmax"} <= set(kinds_without_neurons())
    assert {"conv", "dense", "convtranspose", "rnn", "lstm", "gru", "attention"} == set(kinds_with_macs())


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_the_statement_agrees_with_the_numbers(spec):
    """Over every shipped spec: a layer has 0 neurons exactly when its kind is said to create none,
    and MACs only when its kind is said to count them."""
    for stats in archcalc.analyze(archcalc.load(str(SPECS / spec))).layers:
        assert (stats.neurons == 0) == listed(stats.kind, kinds_without_neurons()), stats.name
        assert stats.macs == 0 or listed(stats.kind, kinds_with_macs()), stats.name


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_format_states_the_same_lists():
    note = footnote("bytes", "shapes", "neurons", "macs")
    assert note in run("inspect", SPECS / "lenet1.yaml")
    assert note in run("diff", SPECS / "lenet1.yaml", SPECS / "lenet5.yaml")
    data = json.loads(run("inspect", SPECS / "lenet1.yaml", "-f", "json"))
    markdown = run("inspect", SPECS / "lenet1.yaml", "-f", "markdown")
    for kind in ("concat", "repeatvector"):
        assert kind in data["conventions"]["neurons"] and f"{kind}" in markdown and kind in note
    assert "convtranspose" in data["conventions"]["macs"] and "convtranspose" in note
    diff = json.loads(run("diff", SPECS / "lenet1.yaml", SPECS / "lenet5.yaml", "-f", "json"))
    assert diff["conventions"] == data["conventions"]
    assert footnote("bytes") in run("explain", SPECS / "lenet1.yaml")


def test_the_conventions_page_lists_every_kind():
    """docs/conventions.md's table names every kind the code lists (activations as a group)."""
    readme = (ROOT / "docs" / "conventions.md").read_text()
    neurons = re.search(r"^\| neurons \|(.*)$", readme, re.M).group(1)
    macs = re.search(r"^\| MACs \|(.*)$", readme, re.M).group(1)
    for kind in kinds_without_neurons():
        assert kind in neurons or (issubclass(REGISTRY[kind], Activation) and "activations" in neurons), kind
    for kind in kinds_with_macs():
        assert kind in macs, kind


def test_one_schema_version_in_every_json_document():
    documents = [run("inspect", SPECS / "lenet1.yaml", "-f", "json"),
                 run("solve", SPECS / "lenet1.yaml", "-f", "json", "--range", "20..40"),
                 run("diff", SPECS / "lenet1.yaml", SPECS / "lenet5.yaml", "-f", "json")]
    assert [json.loads(text)["schema_version"] for text in documents] == [JSON_SCHEMA_VERSION] * 3


def test_run_states_its_conventions_and_schema():
    pytest.importorskip("torch")
    table = run("run", SPECS / "lenet1.yaml", "--device", "meta")
    assert footnote("shapes") in table
    data = json.loads(run("run", SPECS / "lenet1.yaml", "--device", "meta", "-f", "json"))
    assert data["schema_version"] == JSON_SCHEMA_VERSION and set(data["conventions"]) == {"shapes", "params", "bytes"}


def test_one_list_of_formats():
    assert [c for p in main.commands["inspect"].params if p.name == "fmt" for c in p.type.choices] == list(REPORT_FORMATS)
    for fmt in REPORT_FORMATS:
        assert run("inspect", SPECS / "lenet1.yaml", "-f", fmt)
