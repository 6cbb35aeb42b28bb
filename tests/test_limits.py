"""Absurd but well-formed sizes: exact answers or ordinary errors, never an overflow or a hang.

Every count is exact integer arithmetic, so a size of 10^9 or 10^18 must cost what a size of 3
costs: nothing may loop over a size (windows, layers of a stack, candidate fixes).
"""
import json
import subprocess
import sys
import time
import tracemalloc
from math import gcd

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS, spec_text

import archcalc
from archcalc.cli import main
from archcalc.errors import UsageError
from archcalc.layers.footprint import MAX_OPS
from archcalc.layers.pool import adaptive_extent, adaptive_windows
from archcalc.spec import source


def test_adaptive_extent_is_the_windows_closed_form():
    """PyTorch's windows [floor(i*D/out), ceil((i+1)*D/out)), counted one by one, for every small case."""
    for size in range(1, 70):
        for out in range(1, 70):
            lengths = [end - start for start, end in adaptive_windows(size, out)]
            assert adaptive_extent(size, out) == (sum(lengths), max(lengths)), (size, out)
    assert adaptive_extent(10**18, 10**9 + 7)[0] == 10**18 + 10**9 + 7 - gcd(10**18, 10**9 + 7)


GIANTS = [  # (input, layer, exact parameter count, or None when the spec must be refused)
    ([10**6], "dense: 1000000", 10**12 + 10**6),
    ({"steps": 5, "features": 3}, "rnn: {hidden: 4, layers: 1000000000}",
     (4 * 3 + 4 * 4 + 2 * 4) + (10**9 - 1) * (4 * 4 + 4 * 4 + 2 * 4)),  # layer 1, then 10^9 - 1 on 4 inputs
    ([3, 10**9, 8], "adaptiveavgpool: {output: [100000000, 4]}", 0),
    ([1, 10**18, 10**18], "conv: {filters: 1, kernel: 3, stride: 2, rounding: floor}", 3 * 3 + 1),
    ([1, 10**18, 10**18], "conv: {filters: 1, kernel: 3, stride: 2}", None),            # not whole: refused
    ([3, 1000, 1000], "conv: {filters: 1, kernel: 1000000000}", None),                   # does not fit
    ([3, 10**9, 10**9], "conv: {filters: 1, kernel: 999999999, stride: 999999998}", None),
    ([3, 10**9, 10**9], "maxpool: {kernel: 1000000000, stride: 999999999}", 0),
    ([2**61 - 1, 1, 1], "groupnorm: 3", None),   # a prime: its hint's divisors were searched one by one
    ({"steps": 4, "features": 2**61 - 1}, "attention: {heads: 3}", None),   # (in 1.5 billion trial divisions)
]


@pytest.mark.parametrize("shape,layer,params", GIANTS, ids=[g[1] for g in GIANTS])
def test_giant_sizes_are_exact_and_instant(tmp_path, shape, layer, params):
    path = tmp_path / "giant.yaml"
    path.write_text(spec_text(shape, layer))
    start = time.process_time()
    spec = archcalc.load(str(path))
    if params is None:
        with pytest.raises(archcalc.SpecError):
            archcalc.analyze(spec)
    else:
        assert archcalc.analyze(spec).totals.params == params
    for command in (["inspect"], ["inspect", "-f", "json"], ["explain"]):  # every report of it too
        result = CliRunner().invoke(main, [*command, str(path)])
        assert result.exit_code == (2 if params is None else 0), result.output
    assert time.process_time() - start < 10  # CPU seconds (milliseconds in fact): load-independent


# --- limits at every entry point: the command line and repeats, not only the YAML file -------
LIMIT_SECONDS, LIMIT_BYTES = 10, 2 * 2**30  # CPU seconds and peak resident bytes of the command
HANG_GUARD = 120  # wall seconds: only to end a runaway child on a loaded machine

# The child reports its own CPU time and peak memory. Not ru_maxrss: a forked child starts with
# its parent's high-water mark (a pytest process past 2 GB would fail every case); VmHWM belongs
# to the program the child executes. atexit runs on the sys.exit of click's main too.
_CHILD = """
import atexit, resource, sys
def report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    open(sys.argv[1], "w").write(f"{usage.ru_utime + usage.ru_stime} {int(hwm.split()[1]) * 1024}")
atexit.register(report)
from archcalc.cli import main
main(sys.argv[2:], prog_name="archcalc")
"""


def run_bounded(tmp_path, *args):
    """archcalc ARGS in a child process: (result, its CPU seconds, its peak resident bytes)."""
    peak_file = tmp_path / "peak-rss"
    result = subprocess.run([sys.executable, "-c", _CHILD, str(peak_file), *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, timeout=HANG_GUARD)
    seconds, peak = peak_file.read_text().split()
    return result, float(seconds), int(peak)


def alias_bomb(levels: int = 9) -> str:
    """[&a [1 x 9], &b [*a x 9], ...]: under 300 bytes, 9^levels values once expanded."""
    names = "abcdefghijklmnopqrstuvwxyz"
    parts = ["&a [" + ",".join("1" * 9) + "]"]
    parts += [f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ",".join(parts) + "]"


def test_set_alias_bomb_is_refused_in_seconds_and_megabytes(tmp_path):
    """A 317-byte --set argument took over 60 s and 6.3 GB: --set bypassed the spec's alias limit."""
    bomb = alias_bomb()
    assert len(bomb) <= 317
    result, seconds, peak = run_bounded(tmp_path, "inspect", SPECS / "min_char_rnn.yaml",
                                        "--set", f"vocab={bomb}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --set: vocab: the value expands to more than 2,000,000 YAML values")
    assert seconds < LIMIT_SECONDS and peak < LIMIT_BYTES


def test_values_alias_bomb_is_refused_in_seconds_and_megabytes():
    """--values went through yaml.safe_load as well: the same bomb, refused by the same limit."""
    pytest.importorskip("torch")
    from archcalc.backend.verification import parse_values
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(UsageError, match=r"--values: the value expands to more than 2,000,000 YAML values"):
            parse_values(alias_bomb(), (1, 9))
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < LIMIT_SECONDS and peak < 50 * 2**20


DEEP = "[" * 3000 + "]" * 3000


def test_set_with_3000_nested_brackets_is_an_error_not_a_traceback():
    result = CliRunner().invoke(main, ["inspect", str(SPECS / "min_char_rnn.yaml"), "--set", f"vocab={DEEP}"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: --set: vocab: the value nests deeper than 100 levels (at column ")


def test_values_with_3000_nested_brackets_is_an_error_not_a_traceback():
    pytest.importorskip("torch")
    result = CliRunner().invoke(main, ["run", str(SPECS / "course_signal.yaml"), "--values", DEEP])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: --values: the value nests deeper than 100 levels (at column ")


@pytest.mark.parametrize("value,message", [
    ("[1,2", "error: --set: vocab: YAML syntax error: did not find expected ',' or ']' (at the end)"),
    ("!!python/object/apply:os.system ['echo owned']",
     "error: --set: vocab: YAML tag !!python/object/apply:os.system is not allowed in a spec (at column 1)"),
    ("a\n---\nb", "error: --set: vocab: the value holds more than one YAML document ('---' starts another here) "
                  "(at line 2, column 1)"),
])
def test_set_values_that_yaml_refuses_name_the_parameter_and_the_command_line(value, message):
    """'--set w=[1,2' and '--set w=!!python/...' ended in tracebacks; the message names the option,
    the parameter and where in the value."""
    result = CliRunner().invoke(main, ["inspect", str(SPECS / "min_char_rnn.yaml"), "--set",
                                       f"vocab={value}"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    first, hint = result.output.splitlines()[:2]
    assert first == message
    assert hint.startswith("  hint: ") and hint.endswith("; --set takes NAME=VALUE, the value in YAML, e.g. vocab=27")


def test_set_still_reads_yaml_values():
    """min-char-rnn with V = 27 (slide 236: 2HV + H^2 + H + V parameters, H = 100) = 15,527."""
    spec = archcalc.load(str(SPECS / "min_char_rnn.yaml"), {"vocab": 27})
    assert archcalc.analyze(spec).totals.params == 2 * 100 * 27 + 100**2 + 100 + 27
    result = CliRunner().invoke(main, ["inspect", str(SPECS / "min_char_rnn.yaml"), "-f", "json", "--set", "vocab=27"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["params"] == 15_527


def weights_in_a_repeat(times: int, units: int = 16) -> str:
    """A dense layer with explicit weights and biases inside a repeat: units*(units+1) values a copy."""
    weights = [[round((row * units + column) % 7 / 10 - 0.3, 1) for column in range(units)] for row in range(units)]
    return (f"input: [{units}]\nlayers:\n  - repeat:\n      times: {times}\n      layers:\n"
            f"        - dense: {{units: {units}, weights: {weights}, bias: {[0.1] * units}}}\n")


def test_explicit_weights_in_a_200000_fold_repeat_are_refused_in_seconds(tmp_path):
    """The 2.1 KB spec took 37 s and 2 GB: the weights were converted again for every copy, and
    nothing bounded the values of all copies together (54 million here)."""
    path = tmp_path / "weights.yaml"
    path.write_text(weights_in_a_repeat(200_000))
    assert len(path.read_bytes()) < 2200
    result, seconds, peak = run_bounded(tmp_path, "inspect", path)
    assert result.returncode == 2, result.stderr
    assert "explicit weights and biases add up to more than 2,000,000 numbers" in result.stderr
    assert seconds < LIMIT_SECONDS and peak < LIMIT_BYTES


def test_explicit_weights_are_converted_once_per_entry_not_per_copy():
    """Every copy of a repeat shares the layer built from its entry, hence its values."""
    spec = archcalc.loads(weights_in_a_repeat(1000, units=4))
    layers = {id(node.layer) for node in spec.nodes}
    assert len(spec.nodes) == 1000 and len(layers) == 1
    assert spec.nodes[0].layer.weights[1] == (0.1, 0.2, 0.3, -0.3)  # row 1 = (4,5,6,7) % 7 / 10 - 0.3


def test_explicit_values_limit_is_two_million_numbers_in_all():
    """100 weights a copy (dense 10 -> 10, no bias): 20,000 copies are 2,000,000 numbers, one more is too many."""
    def spec(times):
        return (f"input: [10]\nlayers:\n  - repeat: {{times: {times}, layers: "
                f"[{{dense: {{units: 10, bias: false, weights: {[0.5] * 100}}}}}]}}\n")
    assert len(archcalc.loads(spec(20_000)).nodes) == 20_000
    with pytest.raises(archcalc.SpecError, match="add up to more than 2,000,000 numbers"):
        archcalc.loads(spec(20_001))


# --- refusals that should not be ------------------------------------------------------------
def test_yaml_scalar_anchor_is_accepted():
    """'filters: &k 4' then '*k' was refused as an unknown alias: only collections were anchors."""
    aliased = archcalc.analyze(archcalc.loads(
        "input: [3, 8, 8]\nlayers:\n  - conv: {filters: &k 4, kernel: &f 3}\n"
        "  - conv: {filters: *k, kernel: *f}\n  - flatten\n  - dense: *k\n"))
    written = archcalc.analyze(archcalc.loads(
        "input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n"
        "  - conv: {filters: 4, kernel: 3}\n  - flatten\n  - dense: 4\n"))
    assert [(s.output_shape, s.params) for s in aliased.layers] == [(s.output_shape, s.params) for s in written.layers]


def test_scalar_aliases_count_toward_the_value_limit(monkeypatch):
    """A scalar alias is one value (no alias bomb is made of scalars), but each one counts."""
    monkeypatch.setattr(source, "MAX_NODES", 1000)
    def spec(aliases):
        return "input: [3]\nparams: {k: &k 1, many: [" + ",".join(["*k"] * aliases) + "]}\nlayers: [relu]\n"
    assert len(archcalc.loads(spec(900)).nodes) == 1
    with pytest.raises(archcalc.SpecError, match="expands to more than 1,000 YAML values"):
        archcalc.loads(spec(1000))


def test_exponent_numbers_without_a_dot_are_numbers():
    """PyYAML reads YAML 1.1, where 1e-6 and 1E5 are strings ('eps: 1e-6' was refused as text);
    YAML 1.2 and Python read them as floats. Quoted, they stay strings."""
    values = source.load_text("v: [1e-6, 1E5, -2e+3, 1.0e6, '1e-6', 1e, e5, 12, .5]")["v"]
    assert values == [1e-6, 1e5, -2e3, 1e6, "1e-6", "1e", "e5", 12, 0.5]
    assert [type(value) for value in values[:4]] == [float] * 4
    spec = archcalc.loads("input: [8, 4, 4]\nlayers:\n  - scale: 1e-6\n  - batchnorm: {eps: 1E-3}\n")
    assert (spec.nodes[0].layer.init, spec.nodes[1].layer.eps) == (1e-6, 1e-3)
    with pytest.raises(archcalc.SpecError, match=r"units: must be a whole number >= 1, got 1000.0"):
        archcalc.loads("input: [10]\nlayers:\n  - dense: 1e3\n")  # a float, as in YAML 1.2 and Python


@pytest.mark.parametrize("chunks", [1_000_000, 2**63 - 1])
def test_chunk_into_a_million_outputs_is_refused_in_seconds(tmp_path, chunks):
    """Found by the adversarial suite: 'chunk: {chunks: 1000000}' (a 60-byte layer) named a
    million outputs before torch.chunk's rule refused it (6 s and 300 MB; 2^63-1 never ended).
    Each output is named and walked like a layer, so they share the limit of layers."""
    path = tmp_path / "chunks.yaml"
    path.write_text(f"input: {{steps: 3, features: 5}}\nlayers:\n  - chunk: {{chunks: {chunks}}}\n")
    for command in ("inspect", "solve"):
        result, seconds, peak = run_bounded(tmp_path, command, path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(f"error: layer chunk1: the spec's layers have more than 200,000 outputs in all "
                                      f"(this one {chunks:,})\n  hint: that is the limit of layers: each output is "
                                      f"named and checked like one\n")
        assert seconds < LIMIT_SECONDS and peak < LIMIT_BYTES


# --- the memory schedule replays every tensor operation: a count no replay can list is refused ---
SEQUENCE = {"steps": 6, "features": 2}
REPLAYS = [  # (input, layers, the refusal's end: None where the replay answers)
    (SEQUENCE, ["gru: {hidden: 9223372036854775807, layers: 9223372036854775807}"],   # the adversarial suite's
     "this gru's 9,223,372,036,854,775,807 layers x 1 direction run more"),            # (looped without end)
    (SEQUENCE, ["lstm: {hidden: 4, layers: 9223372036854775807, bidirectional: true}"],
     "this lstm's 9,223,372,036,854,775,807 layers x 2 directions run more"),
    (SEQUENCE, ["rnn: {hidden: 1, layers: 1000000}"], "this rnn's 1,000,000 layers x 1 direction run more"),
    ({"steps": 100_000, "features": 32}, ["lstm: {hidden: 256, layers: 4, bidirectional: true}"], None),
    ({"steps": 2**40, "features": 2}, ["gru: {hidden: 2, layers: 3}"], None),   # steps are no ops of their own
]
SCHEDULING = [["memory"], ["memory", "--train"], ["inspect", "--train"], ["inspect", "--max-batch", "24GB"],
              ["memory", "--train", "--gpus", "2", "-b", "2", "--shard", "fsdp"], ["inspect", "--gpus", "2", "-b", "2"],
              ["plan", "--gpu-memory", "80GB", "--gpus", "1..4"]]


@pytest.mark.parametrize("shape,layers,refusal", REPLAYS, ids=[case[1][0] for case in REPLAYS])
def test_every_command_that_replays_memory_refuses_or_answers(tmp_path, shape, layers, refusal):
    """Found by the adversarial suite: a gru of 2^63-1 layers made `memory` list and replay ops
    without end (22 GB, then the test worker died) while inspect answered at once. Every command
    that replays the schedule now answers (exit 0) or refuses past footprint.MAX_OPS (exit 2,
    where and why, no traceback), a realistic LSTM of 4 layers x 2 directions x 100,000 steps
    answering."""
    path = tmp_path / "replay.yaml"
    path.write_text(spec_text(shape, *layers))
    for command in SCHEDULING:
        result = CliRunner().invoke(main, [*command, str(path)])
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), command
        if refusal is None:
            assert result.exit_code == 0, (command, result.output)
            continue
        assert result.exit_code == 2, (command, result.output)
        first, hint = result.output.strip().split("\n")
        assert first.endswith(f"the memory schedule replays at most 20,000 tensor operations (about a second); "
                              f"{refusal}"), first
        assert hint.startswith("  hint: memory, plan, inspect's --train, --max-batch and --gpus, and run --memory "
                               "replay every operation")


def test_a_replay_is_refused_past_its_operations_in_all(tmp_path):
    """Layers that each replay within the limit, a thousand of them past it: refused at the layer
    that crosses it, with the count so far (each lstm here, 10 layers x 2 directions, lists n ops
    in inference on the CPU)."""
    path = tmp_path / "stacks.yaml"
    path.write_text(spec_text(SEQUENCE, "repeat: {times: 1000, layers: [{lstm: {hidden: 1, layers: 10, "
                                        "bidirectional: true}}]}"))
    stats = archcalc.analyze(archcalc.load(str(path))).layers[0]
    n = len(stats.layer.memory_ops(stats.input_shape, stats.output_shape, False, "cpu"))
    crossing = MAX_OPS // n + 1
    result = CliRunner().invoke(main, ["memory", "--device", "cpu", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{path}:3:36: error: layer lstm{crossing}: the memory schedule replays at most "
                                    f"20,000 tensor operations (about a second); the layers up to this one run "
                                    f"{crossing * n:,}\n")


@pytest.mark.parametrize("layers", [["gru: {hidden: 3, layers: 9223372036854775807, freeze: [bias_ih_l0]}"],
                                    ["gru: {hidden: 2, layers: 9223372036854775807, name: a}",
                                     "gru: {hidden: 2, layers: 9223372036854775807, shares: a}"]])
def test_freeze_and_shares_on_an_endless_stack_are_refused(tmp_path, layers):
    """freeze and shares compare a stack's tensors by name: listing 2^63 layers' names hung inspect."""
    path = tmp_path / "stack.yaml"
    path.write_text(spec_text(SEQUENCE, *layers))
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2, result.output
    assert (f"error: layer gru{len(layers)}: its 9,223,372,036,854,775,807 layers x 1 direction hold more tensors "
            f"than archcalc names one by one (at most 100,000 layers x directions)") in result.output


def test_run_memory_refuses_a_replay_before_pytorch_runs(tmp_path):
    """run --memory predicts first: a million-layer rnn is refused before its module is built."""
    pytest.importorskip("torch")
    path = tmp_path / "rnn.yaml"
    path.write_text(spec_text(SEQUENCE, "rnn: {hidden: 1, layers: 1000000}"))
    result = CliRunner().invoke(main, ["run", "--memory", str(path)])
    assert result.exit_code == 2, result.output
    assert "error: layer rnn1: the memory schedule replays at most 20,000 tensor operations" in result.output


def test_run_sizes_a_spec_the_schedule_will_not_replay_by_the_course_rule():
    """run checks that a CPU run fits in free memory by the schedule's peak; past the schedule's
    limit (a million-layer rnn: 24 MB of weights) by the course's rule, not a refusal."""
    from archcalc.backend.verification import _check_fits, predicted_peak

    analysis = archcalc.analyze(archcalc.loads(spec_text(SEQUENCE, "rnn: {hidden: 1, layers: 1000000}")))
    assert predicted_peak(analysis, "forward", "cpu") is None
    _check_fits(analysis, train=True)
