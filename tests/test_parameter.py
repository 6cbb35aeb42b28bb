"""A learned tensor that reads no input ('parameter'): ViT's class token and position embeddings,
counted as torchvision's VisionTransformer holds them, through every command and PyTorch."""
import json

import pytest
from click.testing import CliRunner
from conftest import analyze_text

import archcalc
from archcalc.analysis.walk import valid_inputs
from archcalc.cli import main
from archcalc.layers import Steps
from archcalc.views.explain import explain, render_text

# torchvision's VisionTransformer (vit_b_16: 196 patches of 768): class_token
# nn.Parameter(torch.zeros(1, 1, 768)), pos_embedding nn.Parameter(torch.empty(1, 197, 768))
TOKENS = """
name: vit tokens
input: {steps: 196, features: 768}
layers:
  - parameter: {shape: {steps: 1, features: 768}, name: class_token}
  - concat: {inputs: [class_token, input], axis: 0, name: tokens}
  - parameter: {shape: {steps: 197, features: 768}, name: pos_embedding}
  - add: {inputs: [tokens, pos_embedding]}
"""


def test_class_token_and_position_embeddings_count_as_torchvisions():
    analysis = analyze_text(TOKENS)
    assert analysis.layer("class_token").params == 768
    assert analysis.layer("pos_embedding").params == 197 * 768
    assert analysis.totals.params == 152_064
    assert analysis.layer("class_token").node.inputs == ()
    assert analysis.output_shape == Steps((197, 768))
    # no MACs, no FLOPs, no neurons: the same values for every sample (PyTorch expands a view)
    stats = analysis.layer("pos_embedding")
    assert (stats.macs, stats.flops, stats.neurons) == (0, 0, 0)


def test_run_agrees_and_the_tokens_are_the_class_token_then_the_patches():
    torch = pytest.importorskip("torch")
    from archcalc.backend import build, verify
    from archcalc.backend.export import export_checked
    from archcalc.backend.plan import make_plan

    analysis = analyze_text(TOKENS, batch=3)
    result = verify(analysis, device="cpu")
    assert result.ok and result.actual_params == 152_064, result.disagreements
    network = build(analysis, seed=0)
    patches = torch.randn(3, 196, 768)
    token, position = network.submodule("class_token").weight, network.submodule("pos_embedding").weight
    with torch.no_grad():
        expected = torch.cat([token.expand(3, 1, 768), patches], dim=1) + position
        torch.testing.assert_close(network(patches), expected)
    assert "self.class_token = Parameter((1, 768))" in export_checked(make_plan(analysis))


def test_inputs_on_a_parameter_are_refused():
    with pytest.raises(archcalc.SpecError, match="parameter reads no input .* so it takes no 'inputs'") as caught:
        archcalc.loads("input: [4]\nlayers:\n  - parameter: {shape: [4], inputs: input}\n"
                       "  - add: {inputs: [input, param1]}\n")
    assert caught.value.location.line == 3


def test_solve_finds_the_one_length_the_position_embeddings_fit():
    """valid_inputs walks a layer without inputs as one shape for every candidate."""
    spec = archcalc.loads(TOKENS)
    sizes = [(steps, 768) for steps in (195, 196, 197)]
    assert valid_inputs(spec, [Steps(size) for size in sizes]) == [False, True, False]


def test_views_show_a_layer_that_reads_nothing(tmp_path):
    board = render_text(explain(archcalc.loads(TOKENS)))
    assert "input: none, a learned tensor" in board
    assert "0 neurons: parameter holds parameters, the same for every sample" in board
    path = tmp_path / "tokens.yaml"
    path.write_text(TOKENS)
    runner = CliRunner()
    table = runner.invoke(main, ["inspect", str(path)]).output
    assert "class_token <-" not in table and "tokens <- class_token, input" in table
    layers = json.loads(runner.invoke(main, ["inspect", str(path), "-f", "json"]).output)["layers"]
    assert layers[0]["inputs"] == [] and layers[0]["params"] == 768
    for command in (["inspect", str(path), "--rf", "--train"], ["render", str(path), "-o", str(tmp_path / "t.svg")]):
        assert runner.invoke(main, command).exit_code == 0, command
