"""The command line never ends in a traceback: hypothesis builds argv for every command from its
real option list (click's own), with hostile values, and only exit codes 0, 1 and 2 may come back.

Values: small, huge and negative numbers, inf/nan/1e400, empty strings, unicode (with the lone
surrogates a Linux argv gets for undecodable bytes), 3,000 nested brackets, YAML oddities, paths
that exist and paths that do not, and each option's valid choices so that the commands run deep.
Commands run in-process through click's CliRunner, in a scratch folder so that a random -o writes
nowhere else. run and export (torch) get tiny specs and --device meta.
"""
from __future__ import annotations

import os

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.cli import main

SPECS = {
    "conv": "input: [1, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n  - relu\n  - maxpool: 2\n"
            "  - flatten\n  - dense: 3\n",
    "params": "params: {vocab: 5, hidden: 3}\ninput: {steps: 4, features: $vocab}\nlayers:\n"
              "  - rnn: {hidden: $hidden}\n  - dense: {units: $vocab, activation: softmax}\n",
    "signal": "input: [1, 9]\nlayers:\n  - conv: {filters: 1, kernel: 3, bias: false}\n",
    "invalid": "input: [1, 9]\nlayers:\n  - conv: {filters: 1, kernel: 5, stride: 3}\n",
    "broken": "input: [1, 9\nlayers: [\n",
}

# Cases per command in the default run (about 1 s of CPU in all); the slow run takes forty times
# as many, over 10,000 in all.
CASES = {"inspect": 60, "explain": 25, "solve": 25, "diff": 25, "render": 25, "run": 12, "export": 12,
         "plan": 25, "memory": 25, "kinds": 13, "serve": 13, "import": 13}
SLOW_FACTOR = 40

ARGV_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # NUL never reaches argv
SURROGATES = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)  # undecodable argv bytes, as Python sees them

NUMBERS = st.one_of(
    st.integers(-3, 40).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(10**30, 10**60).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-1e400", "1e-400", "-0", "0", "0x10", "1_000", "1e3", "2.5",
                     "9223372036854775807", "9223372036854775808", "4" * 5000]),
)
NESTED = st.sampled_from([1, 2, 60, 3_000]).flatmap(lambda n: st.sampled_from(
    ["[" * n + "1" + "]" * n, "[" * n, "{a: " * n + "1" + "}" * n, "[1, " * n]))
ODD = st.one_of(
    st.sampled_from(["", " ", "=", "x", "[", "]", "[1", "[1,2", "{", "{}", "[]", "- ", "*a", "&a 1", "~", "null",
                     "true", "!!python/name:os.system", "!!binary AAAA", "'", '"', "\\", "..", "-", "--",
                     "a" * 10_000, "\n", "\t", "é", "²", "٣", "💥", "[/oops]", "\x1b[31m"]),
    st.text(ARGV_TEXT, max_size=12),
    st.text(SURROGATES, min_size=1, max_size=3),
)
SIZES = st.sampled_from(["24GB", "16GiB", "500MB", "1B", "1", "0GB", "-5MB", "1e400GB", "nanGB", "infB", "0.5", "GB",
                         "1e30TB", "10 kB", "1_000KiB"])
SHAPES = st.sampled_from(["3x32x32", "1x9", "1x8x8", "8", "0x3", "3x", "x", "3x4x5x6x7", "[3, 32, 32]", "[1, 9]",
                          "{steps: 4}", "{steps: 4, features: 5}", "1x" + "9" * 40, "3×8×8", "-1x8x8"])
RANGES = st.sampled_from(["1..16", "0..0", "5..1", "1..99999999", "1..", "..", "a..b", "²..5", "3..3"])
NAMES = st.sampled_from(["vocab", "hidden", "steps", "w", "", " ", "vocab ", "é"])


# Options every case starts with, before the random ones (which override them): solve tries 16
# sizes instead of its default 1,024 (0.4 s a case).
FIRST = {"solve": ["--range", "1..16"]}


def values(param: click.Option, paths) -> st.SearchStrategy:
    """Values for one option: its valid choices (to run deep) and everything hostile."""
    hostile = [NUMBERS, NESTED, ODD, SIZES, SHAPES, RANGES, paths,
               st.tuples(NAMES, st.one_of(NUMBERS, NESTED, ODD)).map("=".join)]
    if isinstance(param.type, click.Choice):
        hostile.append(st.sampled_from(list(param.type.choices)))
    return st.one_of(*hostile)


def argv(command: click.Command, paths, specs) -> st.SearchStrategy:
    """[command, spec(s)..., options...] with random options from the command's own list, plus
    now and then an option it does not have or a missing or extra argument."""
    n_specs = sum(1 for p in command.params if isinstance(p, click.Argument))
    spec_lists = st.sampled_from([n_specs] * 8 + [n_specs - 1, n_specs + 1]).flatmap(
        lambda count: st.lists(st.one_of(specs, paths), min_size=max(count, 0), max_size=max(count, 0)))
    option = st.sampled_from([
        st.tuples(st.sampled_from(p.opts + p.secondary_opts)) if p.is_flag
        else st.tuples(st.sampled_from(p.opts + p.secondary_opts), values(p, paths))
        for p in command.params if isinstance(p, click.Option) and p.name != "help"]).flatmap(lambda s: s)
    stray = st.sampled_from(["--nope", "-z", "--", "-"])

    @st.composite
    def build(draw):
        args = [command.name, *draw(spec_lists), *FIRST.get(command.name, [])]
        for words in draw(st.lists(option, max_size=5)):
            args += words
        if draw(st.integers(0, 19)) == 0:
            args.insert(draw(st.integers(1, len(args))), draw(stray))
        return args
    return build()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with the tiny specs, an existing non-spec file and a folder; every run starts here."""
    root = tmp_path_factory.mktemp("cli_fuzz")
    for name, text in SPECS.items():
        (root / f"{name}.yaml").write_text(text)
    (root / "binary.yaml").write_bytes(bytes(range(256)))
    (root / "folder").mkdir()
    return root


def _check(command_name: str, examples: int, scratch, device: str | None = None):
    command = main.commands[command_name]
    root = str(scratch)
    specs = st.sampled_from([os.path.join(root, f"{name}.yaml") for name in SPECS])
    outputs = [os.path.join(root, "out" + ext) for ext in (".json", ".dot", ".gv", ".py", ".txt", ".csv", ".md", "")]
    paths = st.sampled_from([*outputs, os.path.join(root, "binary.yaml"), os.path.join(root, "folder"),
                             os.path.join(root, "missing", "x.dot"), os.path.join(root, "nope.yaml"),
                             os.path.join(root, "conv.yaml")])
    runner = CliRunner()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(argv(command, paths, specs))
    def never_a_traceback(args):
        if device is not None:  # the last --device wins: the meta device, whatever was drawn
            args = [*args, "--device", device]
        result = runner.invoke(main, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exc_info)
        assert result.exit_code in (0, 1, 2), (args, result.output)
        assert "Traceback" not in result.output, (args, result.output)

    cwd = os.getcwd()
    os.chdir(root)  # a random -o lands in the scratch folder
    try:
        never_a_traceback()
    finally:
        os.chdir(cwd)


STATIC = ["inspect", "explain", "solve", "diff", "render", "plan", "memory", "kinds"]
TORCH = ["run", "export", "import"]


@pytest.mark.parametrize("command", STATIC)
def test_static_commands_never_end_in_a_traceback(command, scratch):
    _check(command, CASES[command], scratch)


@pytest.mark.parametrize("command", TORCH)
def test_torch_commands_never_end_in_a_traceback(command, scratch):
    pytest.importorskip("torch")
    _check(command, CASES[command], scratch, device="meta" if command == "run" else None)


def test_serve_never_ends_in_a_traceback(scratch, monkeypatch):
    from archcalc.views.server import Server

    monkeypatch.setattr(Server, "serve_forever", lambda self: None)  # bound, then closed: no waiting for requests
    _check("serve", CASES["serve"], scratch)


@pytest.mark.slow
@pytest.mark.parametrize("command", STATIC + TORCH)
def test_every_command_at_forty_times_the_cases(command, scratch):
    if command in TORCH:
        pytest.importorskip("torch")
    _check(command, CASES[command] * SLOW_FACTOR, scratch, device="meta" if command == "run" else None)


def test_the_slow_run_covers_ten_thousand_cases():
    assert sum(CASES.values()) * SLOW_FACTOR >= 10_000
    assert set(CASES) == set(main.commands)  # a new command gets fuzzed too
