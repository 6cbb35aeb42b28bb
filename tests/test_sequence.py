"""Sequence figures in inspect: --steps, per-token compute, training against 6N + 12·L·T·d, the
attention score matrices in the activation memory and the KV cache, in every report format."""
import json
from fractions import Fraction

import pytest
from conftest import SPECS, analyze_text
from conftest import run_cli as run

import archcalc
from archcalc.analysis.sequence import sequence_figures
from archcalc.views.output import JSON_SCHEMA_VERSION

CHAR_RNN = SPECS / "min_char_rnn.yaml"

# a bigram language model: token ids -> a table of E = 8 -> scores over V = 10 (no attention)
BIGRAM = """
params: {T: 5}
input: {steps: $T}
layers:
  - embedding: {vocabulary: 10, dim: 8}
  - dense: 10
"""


def inspect_json(*args) -> dict:
    result = run("inspect", *args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_min_char_rnn_per_token_is_its_three_matrix_products():
    """Karpathy's min-char-rnn computes per character np.dot(Wxh, x) (100x65), np.dot(Whh, h)
    (100x100) and np.dot(Why, h) (65x100): 6,500 + 10,000 + 6,500 = 23,000 multiply-accumulates,
    whatever the sequence length; its N for 6N is every one of its 23,165 parameters (no table)."""
    for steps in (25, 100):
        figures = sequence_figures(archcalc.analyze(archcalc.load(str(CHAR_RNN), {"steps": steps})))
        assert (figures.steps, figures.macs_per_token, figures.macs) == (steps, 23_000, 23_000 * steps)
        assert figures.estimate_params == 23_165
        assert figures.estimate_flops_per_token == 6 * 23_165  # no attention: 12·L·T·d = 0
        assert figures.training_flops_per_token == 3 * figures.flops_per_token == Fraction(3 * figures.flops, steps)


def test_an_untied_embedding_table_is_not_in_the_estimates_n():
    """nanoGPT's get_num_params leaves out what is only looked up: of the bigram's 80 + 90
    parameters, N = 8 x 10 + 10 = 90, the dense layer's; per token it computes 8 x 10 MACs."""
    figures = sequence_figures(analyze_text(BIGRAM))
    assert (figures.params, figures.estimate_params, figures.estimate_flops_per_token) == (170, 90, 540)
    assert (figures.macs_per_token, figures.attention, figures.kv_cache) == (80, (), None)


def test_networks_without_a_sequence_input_have_no_sequence_figures():
    assert sequence_figures(archcalc.analyze(archcalc.load(str(SPECS / "alexnet.yaml")))) is None
    assert "sequence" not in inspect_json(SPECS / "alexnet.yaml")
    assert "per token" not in run("inspect", SPECS / "alexnet.yaml").stdout


def test_steps_sets_the_spec_parameter_the_input_is_written_with(tmp_path):
    """min_char_rnn writes 'input: {steps: $steps, ...}': --steps 100 is --set steps=100."""
    by_steps = inspect_json(CHAR_RNN, "--steps", "100")
    assert by_steps["input_shape"] == [100, 65] and by_steps["spec_input_shape"] == [100, 65]
    assert by_steps == inspect_json(CHAR_RNN, "--set", "steps=100")
    assert by_steps["sequence"]["steps"] == 100 and by_steps["sequence"]["macs"] == 2_300_000
    literal = tmp_path / "literal.yaml"
    literal.write_text("input: {steps: 25, features: 4}\nlayers: [{rnn: 3}]\n")
    data = inspect_json(literal, "--steps", "7")
    assert (data["input_shape"], data["spec_input_shape"]) == ([7, 4], [25, 4])
    # rnn over 4 features into 3: 4x3 + 3x3 = 21 MACs per step
    assert data["sequence"]["macs_per_token"] == 21


@pytest.mark.parametrize("spec,args,message", [
    (SPECS / "alexnet.yaml", ("--steps", "3"), "error: --steps: the input of this network is not a sequence (3x227x227)"),
    (SPECS / "seq2seq_assez.yaml", ("--steps", "3"), "error: --steps: this network has 2 inputs (french, english)"),
    (CHAR_RNN, ("--steps", "3", "--input", "{steps: 3, features: 65}"),
     "error: --steps: --input gives the whole input shape already"),
    (CHAR_RNN, ("--steps", "3", "--set", "steps=4"), "error: --steps: --set steps=... gives the steps already"),
    (CHAR_RNN, ("--steps", "0"), "error: --steps: 0 is not in the range x>=1"),
    (CHAR_RNN, ("--kv-cache", "8"), "error: --kv-cache: this network keeps no KV cache: it has no attention layer"),
    (CHAR_RNN, ("--columns", "params,kv_cache"), "error: --columns: the kv_cache column needs --kv-cache TOKENS"),
])
def test_refusals_name_the_option(spec, args, message):
    result = run("inspect", spec, *args)
    assert result.exit_code == 2
    assert result.output.splitlines()[0].startswith(message), result.output


def test_every_format_has_the_figures():
    table = run("inspect", CHAR_RNN).stdout
    assert "per token, T = 25: 23.00 kMACs," in table
    assert "estimate 6N + 12·L·T·d = 138.99 kFLOPs (N = 23,165 parameters of matrix products, no attention layer)" \
        in table
    markdown = run("inspect", CHAR_RNN, "-f", "markdown").stdout
    assert "- per token, T = 25: 23.00 kMACs," in markdown and "6N + 12·L·T·d" in markdown
    data = inspect_json(CHAR_RNN)
    assert data["schema_version"] == JSON_SCHEMA_VERSION >= 2   # 2 added the sequence figures
    sequence = data["sequence"]
    assert (sequence["input"], sequence["steps"], sequence["macs_per_token"]) == ("input", 25, 23_000)
    assert sequence["estimate"] == {"formula": "6N + 12·L·T·d", "flops_per_token": 138_990, "params": 23_165,
                                    "attention_flops_per_token": 0}
    assert sequence["training_flops_per_token"] == 3 * sequence["flops_per_token"]
    assert "sequence" in data["conventions"] and "kv_cache" not in data["conventions"]
    assert data["totals"]["attention_scores"] == 0
