import functools
import gc
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import archcalc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# Tests marked slow (over a second or so of CPU each, every concern keeping a quick representative:
# docs/contributing.md) are left out (deselected) so that the default run stays quick; `-m slow` runs
# only them, ARCHCALC_SLOW=1 runs everything, and so does ARCHCALC_LONG=1 (more fuzz and differential
# cases).
RUN_SLOW = os.environ.get("ARCHCALC_SLOW") == "1" or bool(os.environ.get("ARCHCALC_LONG"))

# The tests' tensors are tiny: a second intra-op thread only waits, spinning, beside the first (twice
# the CPU for the same wall time, five times under load). One thread, before any test imports torch;
# the Pythons the tests start (exported modules, distributed ranks) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The quick tier draws the same examples on every run (CI never fails on a draw nobody can replay);
# the slow tier explores afresh. Settings made in the test modules inherit this profile.
settings.register_profile("quick", derandomize=True, database=None)
if not RUN_SLOW:
    settings.load_profile("quick")


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW or "slow" in config.getoption("markexpr"):  # asked for by name: '-m slow' selects them
        return
    # deselected, not skipped: a skipped test still goes through setup and teardown and sends three
    # reports (from a worker to the controller), some 500 of them a run for nothing
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
    config.stash[SLOW_LEFT_OUT] = len(slow)


SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: tell the controller
        session.config.workeroutput["slow_left_out"] = session.config.stash.get(SLOW_LEFT_OUT, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # pytest-xdist's controller: a worker finished
    left_out = getattr(node, "workeroutput", {}).get("slow_left_out", 0)
    node.config.stash[SLOW_LEFT_OUT] = max(node.config.stash.get(SLOW_LEFT_OUT, 0), left_out)


def pytest_terminal_summary(terminalreporter, config):
    left_out = config.stash.get(SLOW_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(f"{left_out} slow tests not run: ARCHCALC_SLOW=1 runs everything, "
                                    f"-m slow only these")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    # What collection makes stays alive the whole run (torch, the test modules, the parametrizations'
    # analyses): no cycle collection while it grows (its full passes took a second of CPU in each
    # worker), then out of the collector's sight, so that its full passes walk only what tests make
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    # ... and in the quick tier, so is most of what a test leaves (modules imported, caches filled):
    # the young garbage collected, the rest frozen too (the full passes over an ever larger heap took
    # some 3 s of CPU a run, a fifth of a second each). Not with the slow tier's big models: a
    # reference cycle of theirs that outlived the young collections would stay frozen, never freed
    if SLOW_LEFT_OUT in item.config.stash:
        gc.collect(1)
        gc.freeze()


def spec_text(input_shape, *layers, defaults: str = "") -> str:
    """A small spec: input then one YAML line per layer."""
    body = "\n".join(f"  - {layer}" for layer in layers)
    extra = f"defaults: {defaults}\n" if defaults else ""
    shape = input_shape if isinstance(input_shape, dict) else list(input_shape)  # dict: a sequence
    return f"input: {shape}\n{extra}layers:\n{body}\n"


def analyze_text(text: str, **options):
    return archcalc.analyze(archcalc.loads(textwrap.dedent(text), "test.yaml"), **options)


def drawn(strategy, count: int) -> list:
    """The first ``count`` examples a hypothesis strategy generates, the same on every run (a fixed
    seed): to measure what a generator covers, not only that each example passes."""
    found = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(strategy)
    def collect(example):
        found.append(example)

    collect()
    return found


def shipped_specs(quick: str = "every") -> list:
    """Every shipped spec as a pytest parameter (id: its file name). quick="kinds": only the fewest
    layers that still use every kind any shipped spec uses stay in the quick tier (smallest specs
    first: a spec stays when it brings a kind none before it has), the rest are slow; the per-kind
    table (tests/kind_table.py) already checks each kind alone."""
    paths = sorted(SPECS.glob("*.yaml"))
    quick_paths = kind_cover() if quick == "kinds" else set(paths)
    return [pytest.param(path, id=path.name, marks=[] if path in quick_paths else [pytest.mark.slow])
            for path in paths]


@functools.cache
def shipped(path: Path, batch: int = 1):
    """A shipped spec's analysis, loaded and analysed once per process (frozen: read, never changed):
    for the parametrizations that choose marks by a spec's size, several modules' worth at collection."""
    return archcalc.analyze(archcalc.load(str(path)), batch=batch)


@functools.cache
def kind_cover() -> frozenset:
    """The shipped specs shipped_specs(quick="kinds") keeps quick."""
    analyses = {path: shipped(path) for path in SPECS.glob("*.yaml")}
    seen: set = set()
    cover = set()
    for path in sorted(analyses, key=lambda p: (len(analyses[p].layers), p.name)):
        kinds = {stats.kind for stats in analyses[path].layers}
        if kinds - seen:
            cover.add(path)
            seen |= kinds
    return frozenset(cover)


@pytest.fixture
def specs_dir():
    return SPECS


def run_cli(*args):
    """archcalc's command line in this process (click's CliRunner), each argument as text; the
    result, after checking that it ended by its own exit (SystemExit), never in a traceback."""
    from click.testing import CliRunner

    from archcalc.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def write_spec(tmp_path, text, name="spec.yaml"):
    """A spec file in the test's folder; its path."""
    path = tmp_path / name
    path.write_text(text)
    return path
