"""archcalc import model.onnx and archcalc inspect model.onnx: every shipped spec, built in
PyTorch and saved by torch.onnx.export (its TorchScript exporter, in eval mode, without constant
folding, which would fold each batchnorm into the conv before it), imports back to the spec's
parameters, MACs and output shapes, and with the file's weights copied into the imported spec's
model (onnx.numpy_helper, by name) computes the source's outputs. The exporter's own parameter
count is the graph's weights.
"""
import contextlib
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import spec_text, write_spec
from small_sizes import SMALL

from archcalc.cli import main
from archcalc.spec import load

torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx") is None:  # found, not imported here: onnx takes half a second of CPU to
    # import (ml_dtypes), paid at collection by every worker; the tests' own imports pay it where they run
    pytest.skip("could not import 'onnx': No module named 'onnx'", allow_module_level=True)

from torch.onnx.symbolic_helper import parse_args  # noqa: E402

from archcalc.backend import build  # noqa: E402
from archcalc.backend.importer import import_model, output_difference  # noqa: E402
from archcalc.backend.importer.onnx import onnx_weights  # noqa: E402
from archcalc.backend.plan import make_plan  # noqa: E402
from archcalc.backend.tensors import sample_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
QUICK = ("lenet5", "unet_small", "rgb3_dense", "min_char_rnn")
# what torch.onnx.export does not write
NOT_EXPORTED = {
    "zero_7_5b": "7.5 billion parameters: too large to write to a file in a test",
}


def channel_shuffle(g, x, groups):
    """aten::channel_shuffle (nn.ChannelShuffle, ShuffleNetV2's) as torchvision's own
    channel_shuffle computes it: a Reshape to [N, g, C/g, H, W], a Transpose of the two group
    axes, a Reshape back."""
    shape = g.op("Shape", x)  # its sizes as the graph computes them: x's may be unknown while exporting
    n, c, positions = (g.op("Slice", shape, ints(g, start), ints(g, end)) for start, end in ((0, 1), (1, 2), (2, 8)))
    grouped = g.op("Concat", n, ints(g, groups), g.op("Div", c, ints(g, groups)), positions, axis_i=0)
    rank = x.type().dim() or 4
    swapped = g.op("Transpose", g.op("Reshape", x, grouped), perm_i=[0, 2, 1, *range(3, rank + 1)])
    return g.op("Reshape", swapped, shape)


def rms_norm(g, x, normalized_shape, weight, eps):
    """aten::rms_norm (nn.RMSNorm, Llama's) as F.rms_norm computes it: x * (mean of x² over the
    normalised axes + eps) ** -1/2, times the weight; eps PyTorch's default (float32's machine
    epsilon) where none is given."""
    from torch.onnx.symbolic_helper import _is_none, _maybe_get_const

    axes = list(range(-len(_maybe_get_const(normalized_shape, "is")), 0))
    eps = torch.finfo(torch.float32).eps if _is_none(eps) else _maybe_get_const(eps, "f")
    mean = g.op("ReduceMean", g.op("Mul", x, x), ints(g, *axes), keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(eps, dtype=torch.float32))))
    y = g.op("Div", x, rms)
    return y if _is_none(weight) else g.op("Mul", y, weight)


def grouped_attention(g, query, key, value, mask, dropout, causal, scale, enable_gqa):
    """aten::scaled_dot_product_attention with grouped key/value heads (enable_gqa): each of
    the kv_heads keys and values repeated heads / kv_heads times in place (repeat_interleave,
    what SDPA computes: an Unsqueeze, an Expand, a Reshape to [N, heads, S, head_dim]), then
    PyTorch's own symbolic without grouping."""
    from torch.onnx._internal.torchscript_exporter import symbolic_opset14
    from torch.onnx.symbolic_helper import _maybe_get_const

    if _maybe_get_const(enable_gqa, "b"):
        repeat = query.type().sizes()[1] // key.type().sizes()[1]

        def repeated(x):
            shape = g.op("Shape", x)
            n, heads, rest = (g.op("Slice", shape, ints(g, start), ints(g, end)) for start, end in ((0, 1), (1, 2), (2, 4)))
            grouped = g.op("Concat", n, heads, ints(g, repeat), rest, axis_i=0)
            spread = g.op("Expand", g.op("Unsqueeze", x, ints(g, 2)), grouped)
            return g.op("Reshape", spread, g.op("Concat", n, g.op("Mul", heads, ints(g, repeat)), rest, axis_i=0))

        key, value = repeated(key), repeated(value)
    return symbolic_opset14.scaled_dot_product_attention(g, query, key, value, mask, dropout, causal, scale,
                                                         g.op("Constant", value_t=torch.tensor(False)))


def ints(g, *values):
    return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))


# what torch.onnx.export (TorchScript) has no symbolic for, or refuses: (operator, opset, its nodes)
WRITTEN = (("aten::channel_shuffle", 9, parse_args("v", "i")(channel_shuffle)), ("aten::rms_norm", 9, rms_norm),
           ("aten::scaled_dot_product_attention", 14, grouped_attention))


@contextlib.contextmanager
def written():
    """While exporting, the symbolics WRITTEN gives."""
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    for name, opset, symbolic in WRITTEN:
        register_custom_op_symbolic(name, symbolic, opset)
    try:
        yield
    finally:
        for name, opset, _ in WRITTEN:
            unregister_custom_op_symbolic(name, opset)


def exported(name: str | Path, tmp_path: Path, params: dict | None = None):
    """(the spec's analysis, the ONNX file torch.onnx.export writes of its model, the model) for a
    shipped spec's name or a spec file; the spec's params overridden by ``params`` (as --set)."""
    source = name if isinstance(name, Path) else SPECS / f"{name}.yaml"
    plan = make_plan(load(str(source), params))
    model = build(plan.analysis, seed=0).eval()
    inputs = sample_inputs(torch, plan, 1, torch.float32, "cpu", None)
    path = tmp_path / f"{source.stem}.onnx"
    with warnings.catch_warnings(), written():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(inputs), str(path), dynamo=False, do_constant_folding=False)
    return plan.analysis, path, model


def check(name: str | Path, tmp_path: Path, params: dict | None = None, values: bool = True):
    """The ONNX import's numbers, and (``values``) its outputs with the file's weights copied in."""
    analysis, path, model = exported(name, tmp_path, params)
    imported = import_model(str(path))
    assert imported.exact, (imported.source, imported.spec)
    totals = imported.analysis.totals
    assert (totals.params, totals.macs) == (analysis.totals.params, analysis.totals.macs)
    assert imported.spec.outputs == tuple(tuple(analysis.output_shapes[o]) for o in analysis.spec.outputs)
    if values:
        weights = onnx_weights(str(path), imported.mapped.transposed)
        torch.manual_seed(0)
        assert output_difference(imported, model, weights=weights) < 1e-4
    return imported


@pytest.mark.parametrize("name", QUICK)
def test_round_trip_through_onnx(name, tmp_path):
    check(name, tmp_path, values=name == "lenet5")


def test_a_small_gpt2_round_trips_through_onnx(tmp_path):
    """Attention from its module's nodes, learned positions (x + W[:T]), the head tied to the
    embedding: the quick representative of the transformers in ONNX."""
    text = check("gpt2", tmp_path, SMALL["gpt2"]).text
    assert "  attention: {causal: true}" in text  # what both layers' attention shares, as a default
    assert "- attention: {heads: 4, name: decoder_layer1_attn}" in text
    assert "shares: wte, name: lm_head" in text


def test_a_small_llama_round_trips_through_onnx(tmp_path):
    """nn.RMSNorm and attention with grouped key/value heads, which the exporter writes only
    with WRITTEN's symbolics (F.rms_norm's nodes; keys and values repeated per query head),
    read back as rmsnorm and attention with kv_heads: the quick representative of TinyLlama."""
    text = check("tinyllama", tmp_path, {**SMALL["tinyllama"], "layers": 1}).text
    assert "  rmsnorm: {eps: 1.0e-05}" in text  # TinyLlama's, as a default
    assert "- attention: {heads: 8, kv_heads: 2, bias: false, qkv: separate, causal: true, rotary: 10000, " \
           "name: llama_layer1_self_attn}" in text
    assert "- rmsnorm: {name: norm}" in text


# the transformers: their numbers at full size, their outputs at a small size (small_sizes.SMALL)
ALL = sorted(p.stem for p in SPECS.glob("*.yaml")
             if p.stem not in (*QUICK, *NOT_EXPORTED, *SMALL))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_spec_round_trips_through_onnx(name, tmp_path):
    check(name, tmp_path)


# TinyLlama's 22 layers are 4.4 GB of float32 weights, which exporting holds several times over (a run
# here passed 11 GB and was stopped): its full width, heads, vocabulary and T, with 2 of the layers
LARGEST = {"tinyllama": {"layers": 2}}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(SMALL) - set(NOT_EXPORTED)))
def test_the_transformers_round_trip_through_onnx(name, tmp_path):
    check(name, tmp_path, LARGEST.get(name), values=False)
    check(name, tmp_path, SMALL[name])


def test_what_the_exporter_writes_as_many_nodes_reads_back_as_one_layer(tmp_path):
    """F.local_response_norm's nodes, a reflect pad whose sizes Shape computes, torch.chunk's
    Slices, and a channel shuffle's reshape, transpose and reshape: each one layer again, with
    the outputs of the source (the quick representative of alexnet, course_padding, ShuffleNetV2)."""
    path = write_spec(tmp_path, spec_text([8, 6, 6], "lrn: {size: 3, k: 2}", "pad: {padding: 1, mode: reflect}",
                                          "conv: {filters: 8, kernel: 3}", "chunk: {chunks: 2, name: halves}",
                                          "conv: {filters: 4, kernel: 1, inputs: halves.1, name: branch}",
                                          "concat: {inputs: [halves.0, branch]}", "channel_shuffle: 2"))
    text = check(path, tmp_path).text
    for line in ("- lrn: {size: 3, k: 2.0, name: norm1}", "- pad: {padding: 1, mode: reflect, name: pad1}",
                 "- split: {sizes: [4, 4], name: halves}", "- channel_shuffle: {groups: 2, name: shuffle1}"):
        assert line in text


def test_attention_arguments_through_onnx(tmp_path):
    """What no exported shipped spec has: its own head_dim, rotary positions (their table folded
    to a constant: theta from its second row), cross-attention with separate projections and no
    bias, and an RMSNorm without a weight or eps (PyTorch's default, float32's epsilon)."""
    path = write_spec(tmp_path, "inputs: {query: {steps: 6, features: 8}, memory: {steps: 4, features: 5}}\n"
                                "layers:\n  - attention: {heads: 2, head_dim: 6, rotary: 500, causal: true, "
                                "inputs: [query]}\n  - attention: {heads: 2, qkv: separate, bias: false, "
                                "inputs: [attn1, memory]}\n  - rmsnorm: {affine: false}\n  - mean\n  - dense: {units: 3}\n")
    text = check(path, tmp_path).text
    assert "- attention: {heads: 2, head_dim: 6, causal: true, rotary: 500, name: attn1, inputs: " in text
    assert "- attention: {heads: 2, bias: false, qkv: separate, name: attn2, inputs: [attn1, " in text
    assert "- rmsnorm: {eps: 1.1920929e-07, affine: false, name: rms1}" in text  # the exporter writes eps


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["lstm: {hidden: 6, layers: 2, bidirectional: true}", "gru: {hidden: 5, returns: last}",
                                   "rnn: {hidden: 4, nonlinearity: relu, bidirectional: true, bias: false}"])
def test_recurrences_round_trip_through_onnx(layer, tmp_path):
    """The exporter's RNN, LSTM and GRU operators (one per layer, gates reordered by Slice and
    Concat of PyTorch's weights): read back with PyTorch's weights in its order."""
    path = write_spec(tmp_path, spec_text({"steps": 7, "features": 3}, layer, "dense: {units: 2}"))
    assert layer.split(":")[0] in check(path, tmp_path).text


def small_models():
    """docs/examples/models.py, models as people write them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_models", ROOT / "docs" / "examples" / "models.py")
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    return small


def export_model(model, shape: tuple, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), str(path), dynamo=False, do_constant_folding=False)
    return path


@pytest.mark.parametrize("pool", [pytest.param("token", marks=pytest.mark.slow), "mean"])  # mean: the quick one
def test_a_plain_torch_vision_transformer_through_onnx(pool, tmp_path):
    """nn.MultiheadAttention as the exporter writes it, nn.Parameters expanded and added, x[:, 0]
    (a Gather) or x.mean(1) (a ReduceMean): PyTorch's parameter count and outputs."""
    torch.manual_seed(0)
    model = small_models().TinyViT(pool=pool)
    path = export_model(model, (3, 32, 32), tmp_path / "vit.onnx")
    imported = import_model(str(path))
    assert imported.exact and imported.spec.params == sum(p.numel() for p in model.parameters())
    assert "- attention: {heads: 4, name: attention}" in imported.text
    assert output_difference(imported, model, weights=onnx_weights(str(path), imported.mapped.transposed)) < 1e-4


def test_what_the_onnx_import_cannot_read_is_refused_with_each_operation(tmp_path):
    """docs/examples/models.py's Rolled: a product with a constant (its torch.roll the exporter
    writes as two Slices and a Concat, which read as a split and a concat)."""
    path = export_model(small_models().Rolled(), (3, 16, 16), tmp_path / "rolled.onnx")
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2, result.output
    assert "1 operation of the model has no layer kind:" in result.output
    assert "graph (Mul): Mul of a tensor and a constant (nearest: multiply)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_inspect_reads_an_onnx_file(tmp_path):
    _, path, _ = exported("lenet5", tmp_path)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "params: 44,426" in result.output  # LeCun et al.'s LeNet-5 count, as tests/test_course_figures.py pins


def test_import_writes_an_onnx_spec(tmp_path):
    analysis, path, _ = exported("unet_small", tmp_path)
    target = tmp_path / "unet.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "as the ONNX graph counts them" in result.output  # parameters and output shapes
    # the shipped spec's MACs, said to be the spec's own: ONNX has none to compare with
    assert f"{analysis.totals.macs:,} MACs (the spec's: the ONNX graph has no count to compare)" in result.output
    assert target.read_text().startswith("# imported by archcalc from unet_small.onnx (ONNX, opset ")


def test_without_the_onnx_package_it_says_how_to_install_it(tmp_path, monkeypatch):
    _, path, _ = exported("lenet5", tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2
    assert "pip install -e '.[onnx]' in a checkout (or pip install onnx)" in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not a protobuf \x00\xff")
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.output
