"""Hostile and random input: every outcome is an analysis or the project's own SpecError.

Three generators feed the loader and the analyzer, and through click's runner the CLI:
- spec-like documents built from the spec language's own words (kinds, fields, top-level keys)
  with edge-case values (0, -1, 2^63, 10^30, NaN, strings, lists, mappings), dumped as YAML;
- the shipped specs and the broken-spec corpus, mutated: characters deleted or inserted (YAML's
  punctuation, tabs, digits), lines duplicated, swapped or dropped, numbers and words replaced;
- arbitrary text.
A success must also survive every report format; a failure must be a SpecError that names the
file, line and column. The CLI must exit 0 or 2 and never print a traceback.

About 3,000 cases in the normal run (some 20 s). ARCHCALC_LONG=1 runs 50 times more; what the
long run covered is recorded in benchmarks/results/fuzz_long_run.md.
"""
import dataclasses
import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, SPECS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import archcalc
from archcalc.cli import main
from archcalc.layers import ALIASES, REGISTRY
from archcalc.spec.model import TOP_LEVEL_KEYS
from archcalc.views import report

SCALE = 50 if os.environ.get("ARCHCALC_LONG") else 1


def fuzz_settings(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None,
                    suppress_health_check=list(HealthCheck))


# --- the property -------------------------------------------------------------------------------

def outcome(text: str, path: str = "fuzz.yaml") -> str:
    """'ok', or the kind of SpecError; anything else (a crash) fails the test."""
    try:
        analysis = archcalc.analyze(archcalc.loads(text, path))
    except archcalc.SpecError as exc:
        assert exc.location is not None and exc.location.path == path, repr(exc)
        first = str(exc).splitlines()[0]
        assert re.match(rf"{re.escape(path)}:\d+:\d+: error: \S", first), first
        kind = re.sub(r"'[^']*'|\"[^\"]*\"|-?\d[\d,.]*", "_", exc.message)[:50]
        event(f"error: {kind}")
        return "error"
    for fmt in ("json", "markdown", "csv"):
        report.render_text(analysis, fmt)
    event(f"ok: {min(len(analysis.layers), 10)}{'+' if len(analysis.layers) >= 10 else ''} layers")
    return "ok"


# --- generators ---------------------------------------------------------------------------------

KINDS = sorted([*REGISTRY, *ALIASES])
FIELDS = sorted({name for cls in REGISTRY.values() for name in cls.spec_fields}
                | {"name", "inputs", "trainable", "times", "layers"})
WORDS = sorted({*KINDS, *FIELDS, *TOP_LEVEL_KEYS, "repeat", "same", "valid", "floor", "ceil", "strict",
                "input", "zeros", "reflect", "relu", "$filters"})

small = st.integers(1, 8)
edges = st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 10**30, 1.5, float("nan"), float("inf")])
scalars = st.one_of(small, st.integers(-2, 64), edges, st.booleans(), st.none(), st.sampled_from(WORDS),
                    st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(WORDS), inner, max_size=4), max_leaves=8)
# a field's value: usually plausible (a small size, one per axis, a known word), sometimes anything
field_values = st.one_of(small, small, small, st.lists(small, min_size=1, max_size=3), st.sampled_from(WORDS), values)
CANDIDATES = [1, 2, 3, 5, 16, [1, 2], [2, 2], 0, 0.5, True, False, "same", "valid", "relu", "tanh", "floor", "ceil",
              "reflect", "sequence", "last", "nearest", "bilinear"]


def accepted(spec_field) -> list:
    """The candidates a field's own converter accepts: plausible values for any kind, new ones too."""
    found = []
    for value in CANDIDATES:
        try:
            spec_field.metadata["convert"](value)
            found.append(value)
        except Exception:  # noqa: BLE001 - refused, whatever the way
            pass
    return found or CANDIDATES


PLAUSIBLE = {kind: {name: (accepted(f), f.default is dataclasses.MISSING) for name, f in cls.spec_fields.items()}
             for kind, cls in REGISTRY.items()}


@st.composite
def layers(draw, depth: int = 0):
    """A list of layers, each usually a known kind with some of its own fields."""
    result = []
    for _ in range(draw(st.integers(0 if depth else 1, 6 if depth == 0 else 3))):
        kind = draw(st.sampled_from([*KINDS, "repeat"] if depth < 2 else KINDS))
        if kind == "repeat":
            result.append({"repeat": {"times": draw(st.one_of(small, scalars)), "layers": draw(layers(depth + 1))}})
            continue
        own = sorted(REGISTRY[ALIASES.get(kind, kind)].spec_fields)
        form = draw(st.sampled_from(["bare", "shorthand", "mapping", "plausible", "plausible", "plausible"]))
        if form == "plausible":  # every required field, some optional ones, values its converters accept
            fields = PLAUSIBLE[ALIASES.get(kind, kind)]
            result.append({kind: {name: draw(st.sampled_from(choices)) for name, (choices, required) in fields.items()
                                  if required or draw(st.booleans())}})
        elif form == "bare":
            result.append(kind)
        elif form == "shorthand":
            result.append({kind: draw(field_values)})
        else:
            keys = st.sampled_from([*own, "name", "inputs", "trainable"] if own else ["name", "bogus"])
            result.append({kind: draw(st.dictionaries(st.one_of(keys, keys, keys, st.sampled_from(WORDS)),
                                                      field_values, max_size=4))})
    return result


plausible_shapes = st.lists(st.integers(1, 40), min_size=1, max_size=4)
plausible_documents = st.fixed_dictionaries({"input": plausible_shapes, "layers": layers()},
                                            optional={"name": st.text(min_size=1, max_size=8)})
wild_documents = st.fixed_dictionaries(
    {"input": st.one_of(plausible_shapes, values), "layers": st.one_of(layers(), values)},
    optional={"name": values, "defaults": st.dictionaries(st.sampled_from(KINDS), values, max_size=2),
              "outputs": values, "blocks": values})
spec_like = st.one_of(plausible_documents, plausible_documents, plausible_documents, wild_documents).map(
    lambda document: yaml.safe_dump(document, sort_keys=False))

CORPUS = ROOT / "tests" / "corpus"
SEEDS = [path.read_bytes().decode("utf-8", "replace")
         for path in sorted([*SPECS.glob("*.yaml"), *CORPUS.glob("*.yaml")])]
PUNCTUATION = ":-[]{},#&*!|>'\"\t\n 0123456789.$<?%@`"
NUMBER_SWAPS = ["0", "-1", "1", "2", "3", "7", "1.5", "9223372036854775807", "9223372036854775808",
                "1000000000000", "1e999", ".nan", "0x10", "1_000"]


@st.composite
def mutated(draw):
    """A shipped or corpus spec with one to four random edits."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["delete", "insert", "number", "word", "line"]))
        at = draw(st.integers(0, len(text)))
        if edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif edit == "insert":
            text = text[:at] + draw(st.text(alphabet=PUNCTUATION + "abcxyz", min_size=1, max_size=6)) + text[at:]
        elif edit in ("number", "word"):
            pattern = r"(?<![\w.])\d+(?![\w.])" if edit == "number" else r"\b[a-z_]+\b"
            found = list(re.finditer(pattern, text))
            if found:
                match = draw(st.sampled_from(found))
                new = draw(st.sampled_from(NUMBER_SWAPS if edit == "number" else WORDS + [match.group()[:-1]]))
                text = text[:match.start()] + new + text[match.end():]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            change = draw(st.sampled_from(["duplicate", "swap", "drop"]))
            if change == "duplicate":
                lines.insert(i, lines[j])
            elif change == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


any_text = st.one_of(st.text(max_size=200), st.text(alphabet=PUNCTUATION + "abinputlayersconv", max_size=200))


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.slow
@fuzz_settings(1000)
@given(spec_like)
def test_spec_like_documents(text):
    outcome(text)


@pytest.mark.slow
@fuzz_settings(1200)
@given(mutated())
def test_mutated_specs(text):
    outcome(text)


@fuzz_settings(500)
@given(any_text)
def test_arbitrary_text(text):
    outcome(text)


WORK = Path(tempfile.mkdtemp(prefix="archcalc-fuzz-"))


@pytest.mark.slow
@fuzz_settings(400)
@given(st.one_of(mutated(), spec_like, any_text), st.sampled_from(["table", "json"]))
def test_cli_exits_0_or_2_without_traceback(text, fmt):
    path = WORK / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = CliRunner().invoke(main, ["inspect", str(path), "-f", fmt])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: \S", result.output), result.output
