"""The broken-spec corpus: every file in tests/corpus/ with the exact message a user reads.

NAME.yaml is a broken spec (a typo, a wrong type, an impossible size, a YAML mistake, a wrong
encoding, a hostile file); NAME.expected is everything `archcalc inspect NAME.yaml` prints,
run from tests/corpus/: file:line:column, the layer, what is wrong, then the hint. Error wording
is reviewed like output: a change shows up in these files.
"""
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

import archcalc
from archcalc.cli import main

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(path.stem for path in CORPUS.glob("*.yaml"))


def test_every_broken_spec_has_its_expected_message():
    assert sorted(path.stem for path in CORPUS.glob("*.expected")) == CASES
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", CASES)
def test_message(name, monkeypatch):
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(main, ["inspect", f"{name}.yaml"])
    assert result.exit_code == 2
    assert result.output == (CORPUS / f"{name}.expected").read_text(encoding="utf-8")


HOSTILE = ["billion_laughs", "deep_nesting", "repeat_explosion", "recursive_block", "huge_number",
           "huge_kernel", "huge_input", "weights_repeat_explosion"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_specs_are_refused_fast_and_small(name):
    """Bounds a busy machine meets easily: the files are refused in milliseconds and a few MB
    (expanding the billion laughs took 4 s and 400 MB; the nested repeats, 9 s and 600 MB)."""
    tracemalloc.start()
    start = time.process_time()  # CPU: a busy machine's wall clock says nothing
    try:
        with pytest.raises(archcalc.SpecError):
            archcalc.analyze(archcalc.load(str(CORPUS / f"{name}.yaml")))
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5
    assert peak < 50 * 2**20
