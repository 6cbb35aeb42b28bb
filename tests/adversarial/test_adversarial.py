"""The adversarial suite: specs from tests/adversarial/adversarial_specs.py through every command
(tests/adversarial/adversarial_checks.py says what must hold).

The default (quick) run checks 10 specs (about 3 s of CPU; SVG for two), the slow run 340 more with
SVG and a subprocess sample, and the generator's coverage; scripts/adversarial_run.py runs 5,000 and more, and its last results are in
benchmarks/results/adversarial_long_run.md.
"""
import functools
from collections import Counter

import pytest
from adversarial_checks import check
from adversarial_specs import HOSTILE_NAMES, case

from archcalc.layers import ALIASES, REGISTRY

pytest.importorskip("torch")


def assert_clean(reports):
    failures = [(report.seed, command, message) for report in reports for command, message in report.failures]
    assert not failures, "\n\n".join(f"seed {seed}, {command}: {message}\n--- spec ---\n{case(seed).text}"
                                     for seed, command, message in failures[:3])


def assert_reaches_pytorch(reports, least: float):
    """Enough specs get through the analysis, export and the exported file's checks: a generator
    whose specs all stop at the loader would test little of the rest."""
    exported = sum(report.codes.get("export-executed") == 0 for report in reports)
    assert exported >= least * len(reports), f"{exported} of {len(reports)} specs exported and loaded into build"


def test_adversarial_slice(tmp_path):
    reports = []
    for seed in range(10):
        folder = tmp_path / str(seed)
        folder.mkdir()
        reports.append(check(case(seed), folder, svg=seed % 5 == 0))
    assert_clean(reports)
    assert_reaches_pytorch(reports, 0.5)


@pytest.mark.slow
def test_adversarial_slow(tmp_path):
    reports = []
    for seed in range(10, 350):
        folder = tmp_path / str(seed)
        folder.mkdir()
        reports.append(check(case(seed), folder, svg=True, processes=seed % 60 == 0))
    assert_clean(reports)
    assert_reaches_pytorch(reports, 0.5)
    assert sum("process-exported-file" in report.codes for report in reports) >= 2


@pytest.mark.slow
def test_generator_covers_every_kind_and_name_class():
    """Over 2,000 seeds (generation only), every kind and alias of the registry is written, and
    repeats, blocks, shares, frozen tensors, several inputs and outputs, spec parameters,
    explicit weights and spoiled arguments all occur."""
    kinds, features = Counter(), Counter()
    for seed in range(2000):
        drawn = case(seed)
        kinds.update(drawn.kinds)
        written = repr(drawn.document)
        for feature in ("repeat", "blocks", "shares", "freeze", "inputs", "outputs", "params", "$twice", "defaults",
                        "weights"):
            features[feature] += feature in written
        features["spoiled"] += bool(drawn.invalid)
    assert not (set(REGISTRY) | set(ALIASES)) - set(kinds), "kinds never written"
    assert all(count >= 20 for count in features.values()), features


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(HOSTILE_NAMES))
def test_every_name_class_is_drawn(group):
    assert any(sample in name for name in drawn_names() for sample in HOSTILE_NAMES[group])


@functools.cache
def drawn_names() -> frozenset:
    return frozenset(name for seed in range(2000) for name in _names(case(seed).document))


def _names(document) -> set:
    found = set()
    for layer in document["layers"]:
        if isinstance(layer, dict) and isinstance(args := next(iter(layer.values())), dict) and "name" in args:
            found.add(str(args["name"]))
    found |= set(document.get("inputs", {}))
    if "name" in document:
        found.add(str(document["name"]))
    return found
