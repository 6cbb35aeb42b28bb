import textwrap
from pathlib import Path

import pytest

import archcalc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def spec_text(input_shape, *layers, defaults: str = "") -> str:
    """A small spec: input then one YAML line per layer."""
    body = "\n".join(f"  - {layer}" for layer in layers)
    extra = f"defaults: {defaults}\n" if defaults else ""
    shape = input_shape if isinstance(input_shape, dict) else list(input_shape)  # dict: a sequence
    return f"input: {shape}\n{extra}layers:\n{body}\n"


def analyze_text(text: str, **options):
    return archcalc.analyze(archcalc.loads(textwrap.dedent(text), "test.yaml"), **options)


@pytest.fixture
def specs_dir():
    return SPECS
