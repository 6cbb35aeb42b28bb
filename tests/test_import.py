"""archcalc import: PyTorch models (torch.fx) -> specs with the same numbers, readable.

The numbers each import must match are PyTorch's own: the model's parameters(), the shapes it
traces, its FlopCounterMode count of convolution and matrix-product FLOPs (MACs x 2), and its
outputs with its weights copied into the spec's model. Round trips: every shipped spec ->
archcalc export (plain PyTorch) -> import gives the spec's numbers back.
"""
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_spec
from small_sizes import SMALL

from archcalc.cli import main
from archcalc.errors import ArchcalcError
from archcalc.layers.shapes import FeatureMap
from archcalc.spec import load

torch = pytest.importorskip("torch")

from archcalc.backend.export import export_checked  # noqa: E402
from archcalc.backend.importer import import_model, output_difference  # noqa: E402
from archcalc.backend.plan import make_plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MODELS = ROOT / "docs" / "examples" / "models.py"
QUICK = ("lenet5", "unet_small", "inception", "min_char_rnn")  # a chain, skips and a transposed conv, branches
# and concats, a recurrence


def flops_of(model, shape) -> int:
    """PyTorch's own count, FLOPs of convolutions and matrix products for one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros((1, *shape)))
    return counter.get_total_flops()


def round_trip(name: str | Path, tmp_path: Path, params: dict | None = None):
    """spec (a shipped one's name or a file; its params overridden by ``params``, as --set does)
    -> export -> import; returns (the spec's plan, the import, the exported model's class)."""
    source = name if isinstance(name, Path) else SPECS / f"{name}.yaml"
    plan = make_plan(load(str(source), params))
    code = export_checked(plan)
    path = tmp_path / f"{source.stem}.py"
    path.write_text(code)
    imported = import_model(f"{path}:{plan.class_name}", list(plan.inputs.values()))
    namespace: dict = {}
    exec(compile(code, str(path), "exec"), namespace)
    return plan, imported, namespace[plan.class_name]


def check_numbers(plan, imported) -> None:
    totals = plan.analysis.totals
    assert imported.exact, (imported.source, imported.spec)
    assert (imported.spec.params, imported.spec.macs) == (totals.params, totals.macs)
    assert imported.spec.outputs == tuple(tuple(plan.analysis.output_shapes[o]) for o in plan.outputs)


def check_round_trip(name: str | Path, tmp_path: Path, params: dict | None = None):
    """The round trip's numbers, and its outputs with the exported model's weights copied in."""
    plan, imported, source = round_trip(name, tmp_path, params)
    check_numbers(plan, imported)
    torch.manual_seed(0)
    assert output_difference(imported, source()) < 1e-4
    return imported


@pytest.mark.parametrize("name", QUICK)
def test_round_trip_through_export(name, tmp_path):
    check_round_trip(name, tmp_path)


# The transformers: their numbers at full size (traced on the meta device, where 1.1 billion
# parameters cost nothing), their outputs at a small size of the same spec (small_sizes.SMALL),
# which the CPU runs in a moment; archcalc's Attention, Positions and Parameter read back whole.
# ZeRO's 7.5 billion parameters: numbers only (the CPU cannot hold the source and the copy).
ALL = sorted(p.stem for p in SPECS.glob("*.yaml") if p.stem not in (*QUICK, *SMALL, "zero_7_5b"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_spec_round_trips_through_export(name, tmp_path):
    check_round_trip(name, tmp_path)


def test_a_small_gpt2_round_trips_with_its_tied_head_and_positions(tmp_path):
    """attention (fused, causal), learned positions, the LM head tied to the embedding: the
    quick representative of the transformers."""
    text = check_round_trip("gpt2", tmp_path, SMALL["gpt2"]).text
    assert "- positions: {max: 16, name: wpe}" in text
    assert "shares: wte, name: lm_head" in text


def test_attention_arguments_and_fixed_positions_round_trip(tmp_path):
    """What no shipped spec has: sinusoidal positions, attention with one key/value head, its own
    head_dim, rotary base 500, cross-attention reading a second sequence, the mean of the steps."""
    path = write_spec(tmp_path, "inputs: {query: {steps: 6, features: 8}, memory: {steps: 4, features: 5}}\n"
                                "layers:\n  - sinusoidal: {base: 100, inputs: [query]}\n"
                                "  - attention: {heads: 2, kv_heads: 1, head_dim: 6, rotary: 500, causal: true}\n"
                                "  - attention: {heads: 2, qkv: separate, inputs: [attn1, memory]}\n"
                                "  - mean\n  - dense: {units: 3}\n")
    text = check_round_trip(path, tmp_path).text
    assert "- sinusoidal: {base: 100, name: sin1, inputs: query}" in text
    assert "- attention: {heads: 2, kv_heads: 1, head_dim: 6, causal: true, rotary: 500, name: attn1}" in text
    assert "- attention: {heads: 2, qkv: separate, name: attn2, inputs: [attn1, memory]}" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_transformers_round_trip_through_export(name, tmp_path):
    plan, imported, _ = round_trip(name, tmp_path)
    check_numbers(plan, imported)
    check_round_trip(name, tmp_path, SMALL[name])


@pytest.mark.slow
def test_zero_7_5b_round_trips_through_export_in_numbers(tmp_path):
    check_numbers(*round_trip("zero_7_5b", tmp_path)[:2])


def test_blocks_repeats_and_defaults_from_module_paths():
    """A ResNet written by hand: its numbers are PyTorch's, its spec reads like a spec."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_models", MODELS)
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    model = small.tiny_resnet()
    imported = import_model(f"{MODELS}:tiny_resnet", [FeatureMap((3, 32, 32))])
    assert imported.spec.params == sum(p.numel() for p in model.parameters()) == 16_978
    assert imported.spec.macs * 2 == flops_of(model, (3, 32, 32))
    assert imported.spec.outputs == ((10,),)
    text = imported.text
    assert "  conv: {bias: false" in text                           # what every conv shares, once
    assert "  block:  # Block, as layer1.0" in text                 # the module class names the block
    assert "- repeat: {name: layer1, times: 3, layers: [block: {filters: 8, name: layer1}]}" in text
    assert "- conv: {filters: 16, kernel: 1, stride: 2, name: layer2.0.downsample.0}" in text  # module paths
    assert "- add: {name: add, inputs: [bn2, in]}" in text          # `out += identity`
    torch.manual_seed(0)
    assert output_difference(imported, model) < 1e-4


def test_functional_calls_channels_last_and_splits():
    """torch.cat, torch.split, F.gelu, a layer scale (parameter * x), a permute to channels-last
    around nn.LayerNorm and nn.Linear, F.max_pool2d with ceil_mode."""
    imported = import_model(f"{MODELS}:Branchy", [FeatureMap((4, 16, 16))])
    assert imported.exact
    text = imported.text
    for line in ("- conv: {filters: 2, kernel: 3, padding: 1, activation: gelu, name: b, inputs: input}",
                 "- layernorm: {axes: channels, name: norm}", "- dense: {units: 8, axes: channels, name: fc}",
                 "- split: {sizes: [3, 5], name: split}", "- concat: {name: cat_2, inputs: [split.1, split.0]}",
                 "- maxpool: {kernel: 3, stride: 2, rounding: ceil, name: maxpool}", "- scale: {name: scale}"):
        assert line in text
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_models", MODELS)
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    torch.manual_seed(0)
    assert output_difference(imported, small.Branchy()) < 1e-4


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_writes_the_spec_and_says_what_it_counted(tmp_path):
    target = tmp_path / "net.yaml"
    result = cli("import", f"{MODELS}:tiny_resnet", "--input", "3x32x32", "--args", '{"num_classes": 7}',
                 "-o", target)
    assert result.exit_code == 0, result.output
    assert "imported tiny_resnet: 50 layers, 16,927 parameters" in result.output  # 16,978 less 3 x (16 + 1)
    assert "as PyTorch counts them" in result.output
    assert cli("inspect", target).exit_code == 0
    run = cli("run", target, "--device", "cpu")
    assert run.exit_code == 0, run.output


def test_unsupported_operations_are_listed_with_the_nearest_kinds(tmp_path):
    target = tmp_path / "net.yaml"
    result = cli("import", f"{MODELS}:Rolled", "--input", "3x16x16", "-o", target)
    assert result.exit_code == 2
    assert "error: 2 operations of the model have no layer kind:" in result.output
    assert "  forward: torch.roll (nearest: pad, reshape, permute)" in result.output
    assert "  forward: operator.mul of a tensor and a constant (nearest: multiply)" in result.output
    assert "Traceback" not in result.output
    assert not target.exists()


@pytest.mark.parametrize("args, message", [
    (["nomodule"], "MODEL: names no callable"),
    ([f"{MODELS}:nothing"], "has no nothing"),
    (["no_such_module_xyz:f"], "importing no_such_module_xyz failed: ModuleNotFoundError"),
    ([f"{MODELS}:tiny_resnet", "--args", "{nope"], "--args: is not JSON"),
    ([f"{MODELS}:tiny_resnet", "--args", '{"depth": 3}'], "building the model failed: TypeError"),
    ([f"{MODELS}:tiny_resnet", "--input", "3x2x2", "--args", '{"width": 0}'], "failed"),
])
def test_refusals_say_what_and_exit_2(args, message, tmp_path):
    result = cli("import", *args, "-o", tmp_path / "x.yaml")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_error_is_an_archcalc_error():
    with pytest.raises(ArchcalcError):
        import_model(f"{MODELS}:Rolled", [FeatureMap((3, 16, 16))])


def test_relative_model_paths_work(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("import", f"{os.path.relpath(MODELS, ROOT)}:Branchy", "--input", "4x16x16", "-o", tmp_path / "b.yaml")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("pool", [pytest.param("token", marks=pytest.mark.slow), "mean"])  # mean: the quick one
def test_a_plain_torch_vision_transformer(pool):
    """nn.MultiheadAttention, a class token and positions as nn.Parameters, x[:, 0] or x.mean(1):
    PyTorch's own parameter count, FLOP count and outputs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_models", MODELS)
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    imported = import_model(f"{MODELS}:TinyViT", [FeatureMap((3, 32, 32))], f'{{"pool": "{pool}"}}')
    torch.manual_seed(0)
    model = small.TinyViT(pool=pool)
    assert imported.exact
    assert imported.spec.params == sum(p.numel() for p in model.parameters())
    # exact: FlopCounterMode's count on the meta device, where attention runs its math kernel (on the
    # CPU the counter misses nn.MultiheadAttention's fused kernels); by hand: the patch conv 32 x 3*8*8
    # x 16 positions, the projections 17 x 32 x (96 + 32), Q Kᵀ and A V 2 x 4 heads x 17 x 17 x 8,
    # the MLP 2 x 17 x 32 x 64, the head 32 x 10
    assert imported.spec.macs == 98_304 + 69_632 + 18_496 + 69_632 + 320
    assert "- attention: {heads: 4, name: attention}" in imported.text
    assert ("- select: {name: select}" if pool == "token" else "- mean: {name: mean}") in imported.text
    assert output_difference(imported, model) < 1e-4
