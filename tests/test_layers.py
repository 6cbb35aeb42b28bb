"""One row per layer kind: (kind, spec fragment, input, expected output shape, expected params).

A fragment is the row's layer, then (after a new line and '  - ') any layer a spec needs with it:
a layer that reads nothing (parameter) needs another that reads the network input.

Expected parameter counts follow PyTorch's module for the same layer (nn.Conv2d, nn.Linear, ...);
test_backend.py checks the same table against PyTorch itself.
"""
import pytest
from conftest import spec_text

import archcalc
from archcalc.layers import REGISTRY, FeatureMap, Outputs

LAYER_TABLE = [
    # kind, fragment, input, output, params
    ("conv", "conv: {filters: 96, kernel: 11, stride: 4}", (3, 227, 227), (96, 55, 55), 34_944),
    ("conv", "conv: {filters: 4, kernel: 3, padding: same, stride: 2}", (2, 9), (4, 5), 28),
    ("conv", "conv: {filters: 8, kernel: [3, 5], padding: [1, 2]}", (4, 10, 12), (8, 10, 12), 488),
    ("conv", "conv: {filters: 6, kernel: 3, dilation: 2, groups: 3, bias: false}", (3, 16, 16), (6, 12, 12), 54),
    ("conv", "conv: {filters: 2, kernel: 3, padding: 1, padding_mode: reflect}", (1, 5), (2, 5), 8),
    ("conv1d", "conv1d: {filters: 5, kernel: 5, padding: same, bias: false}", (1, 100), (5, 100), 25),
    ("conv2d", "conv2d: {filters: 6, kernel: 5}", (1, 28, 28), (6, 24, 24), 156),
    ("conv3d", "conv3d: {filters: 2, kernel: 3, stride: [1, 2, 2], padding: 1}", (1, 8, 17, 17), (2, 8, 9, 9), 56),
    ("maxpool", "maxpool: {kernel: 3, stride: 2}", (96, 55, 55), (96, 27, 27), 0),
    ("maxpool", "maxpool: {kernel: 3, stride: 2, rounding: ceil}", (16, 112, 112), (16, 56, 56), 0),
    ("avgpool", "avgpool: 2", (6, 24, 24), (6, 12, 12), 0),
    ("globalavgpool", "globalavgpool", (512, 7, 7), (512,), 0),
    ("globalmaxpool", "globalmaxpool", (64, 9), (64,), 0),
    ("adaptiveavgpool", "adaptiveavgpool: {output: [6, 6]}", (256, 13, 13), (256, 6, 6), 0),
    ("adaptivemaxpool", "adaptivemaxpool: 1", (8, 5, 5), (8, 1, 1), 0),
    ("flatten", "flatten", (256, 6, 6), (9216,), 0),
    ("dense", "dense: 4096", (9216,), (4096,), 37_752_832),
    ("dense", "fc: {units: 10, bias: false}", (784,), (10,), 7_840),
    ("dropout", "dropout: 0.5", (4096,), (4096,), 0),
    ("lrn", "lrn: {size: 5}", (96, 27, 27), (96, 27, 27), 0),
    ("batchnorm", "batchnorm", (64, 56, 56), (64, 56, 56), 128),
    ("layernorm", "layernorm", (10, 4), (10, 4), 80),
    ("relu", "relu", (8, 4, 4), (8, 4, 4), 0),
    ("tanh", "tanh", (8,), (8,), 0),
    ("sigmoid", "sigmoid", (8,), (8,), 0),
    ("elu", "elu: 0.5", (8,), (8,), 0),
    ("leakyrelu", "leakyrelu: {negative_slope: 0.2}", (8,), (8,), 0),
    ("gelu", "gelu", (8,), (8,), 0),
    ("softmax", "softmax", (10,), (10,), 0),
    ("add", "add: {inputs: [input, input]}", (8, 4, 4), (8, 4, 4), 0),
    ("concat", "concat: {inputs: [input, input]}", (3, 4, 4), (6, 4, 4), 0),
    # recurrent: PyTorch's nn.RNN/LSTM/GRU(10, 20, ...) parameter counts; bias: single is the
    # course's and min-char-rnn's H*F + H*H + H
    ("rnn", "rnn: 20", {"steps": 7, "features": 10}, (7, 20), 640),
    ("rnn", "rnn: {hidden: 20, bias: single, returns: last}", {"steps": 7, "features": 10}, (20,), 620),
    ("lstm", "lstm: {hidden: 20, layers: 2, bidirectional: true, returns: last}",
     {"steps": 7, "features": 10}, (40,), 15_040),
    ("gru", "gru: {hidden: 20, layers: 3, bias: false}", {"steps": 7, "features": 10}, (7, 20), 6_600),
    ("embedding", "embedding: {vocabulary: 1000, dim: 64}", {"steps": 12}, (12, 64), 64_000),
    ("repeatvector", "repeatvector: 5", (8,), (5, 8), 0),
    ("dense", "dense: 4", {"steps": 7, "features": 10}, (7, 4), 44),
    ("layernorm", "layernorm", {"steps": 7, "features": 10}, (7, 10), 20),
    # nn.ConvTranspose2d(64, 32, 2, stride=2) on 16x16; (6, 4, 3, stride 2, padding 1,
    # output_padding 1, groups 2) on 7x9
    ("convtranspose", "convtranspose: {filters: 32, kernel: 2, stride: 2}", (64, 16, 16), (32, 32, 32), 8_224),
    ("convtranspose", "upconv: {filters: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 2}",
     (6, 7, 9), (4, 14, 18), 112),
    ("upsample", "upsample: 2", (8, 5, 7), (8, 10, 14), 0),
    # --- issue 13, element-wise merges and learned tensors (kinds-a) ---
    # broadcasting itself: tests/test_elementwise.py against torch.broadcast_shapes
    ("multiply", "multiply: {inputs: [input, input, input]}", (8, 4, 4), (8, 4, 4), 0),
    ("subtract", "subtract: {inputs: [input, input]}", {"steps": 5, "features": 3}, (5, 3), 0),
    # torchvision's ConvNeXt layer_scale: nn.Parameter(torch.ones(dim, 1, 1) * 1e-6), 96 in stage 1
    ("scale", "scale: 1.0e-6", (96, 56, 56), (96, 56, 56), 96),
    ("scale", "scale", {"steps": 7, "features": 10}, (7, 10), 10),
    # parameter reads no input, so a second layer reads the network input with it (row = the first
    # layer); torchvision's ViT-B/16: class_token [1, 1, 768] and pos_embedding [1, 197, 768] per batch
    ("parameter", "parameter: {shape: {steps: 1, features: 768}}\n  - concat: {inputs: [param1, input], axis: 0}",
     {"steps": 196, "features": 768}, (1, 768), 768),
    ("parameter", "parameter: [8, 1, 1]\n  - multiply: {inputs: [input, param1]}", (8, 4, 4), (8, 1, 1), 8),
    # --- end kinds-a merges ---
    # --- issue 13, activations (kinds-a): torch.nn's modules of the same names; nn.PReLU() has 1
    # parameter, nn.PReLU(8) 8 ---
    ("silu", "silu", (8, 4, 4), (8, 4, 4), 0),
    ("silu", "swish", (8,), (8,), 0),
    ("hardswish", "hardswish", (16, 5, 5), (16, 5, 5), 0),
    ("hardsigmoid", "hardsigmoid", (16, 1, 1), (16, 1, 1), 0),
    ("relu6", "relu6", (32, 7), (32, 7), 0),
    ("mish", "mish", (8,), (8,), 0),
    ("gelu", "gelu: {approximate: tanh}", {"steps": 5, "features": 8}, (5, 8), 0),
    ("softplus", "softplus: {beta: 2, threshold: 10}", (8,), (8,), 0),
    ("softmax", "softmax: {axis: 0}", {"steps": 6, "features": 4}, (6, 4), 0),
    ("logsoftmax", "logsoftmax", (10,), (10,), 0),
    ("logsoftmax", "log_softmax: {axis: 2}", (3, 4, 5), (3, 4, 5), 0),
    ("abs", "abs", (3, 5), (3, 5), 0),
    ("prelu", "prelu", (8, 4, 4), (8, 4, 4), 1),
    ("prelu", "prelu: 8", (8, 4, 4), (8, 4, 4), 8),
    # --- end kinds-a activations ---
    # --- issue 13, norms (kinds-a): nn.LayerNorm(96) (ConvNeXt's LayerNorm2d), nn.GroupNorm(8, 32),
    # nn.RMSNorm(16), nn.InstanceNorm2d(16) (affine false), nn.InstanceNorm1d(16, affine=True) ---
    ("layernorm", "layernorm: {axes: channels, eps: 1.0e-6}", (96, 56, 56), (96, 56, 56), 192),
    ("layernorm", "layernorm: {axes: all}", {"steps": 7, "features": 10}, (7, 10), 140),
    ("groupnorm", "groupnorm: 8", (32, 10, 10), (32, 10, 10), 64),
    ("groupnorm", "groupnorm: {groups: 4, affine: false}", (8, 6), (8, 6), 0),
    ("rmsnorm", "rmsnorm", {"steps": 7, "features": 16}, (7, 16), 16),
    ("rmsnorm", "rmsnorm: {axes: channels, eps: 1.0e-6}", (8, 5, 5), (8, 5, 5), 8),
    ("instancenorm", "instancenorm", (16, 9, 9), (16, 9, 9), 0),
    ("instancenorm", "instancenorm: {affine: true, track_running_stats: true}", (16, 9), (16, 9), 32),
    # --- end kinds-a norms ---
    # --- layers that move or view values (channels.py): torch.split/chunk (one shape per output),
    # nn.ChannelShuffle, nn.ZeroPad/ReflectionPad/CircularPad/ReplicationPad with F.pad's side order,
    # reshape with -1, permute, nn.Identity; ShuffleNetV2's 116 channels halved at 28x28
    ("split", "split: {sizes: [58, 58]}", (116, 28, 28), ((58, 28, 28), (58, 28, 28)), 0),
    ("split", "split: {sizes: [1, 3], axis: 2}", (2, 5, 4), ((2, 5, 1), (2, 5, 3)), 0),
    ("chunk", "chunk: 2", (116, 28, 28), ((58, 28, 28), (58, 28, 28)), 0),
    ("chunk", "chunk: {chunks: 3, axis: 1}", (4, 7), ((4, 3), (4, 3), (4, 1)), 0),
    ("channel_shuffle", "channel_shuffle: 2", (116, 28, 28), (116, 28, 28), 0),
    ("pad", "pad: 1", (3, 5, 5), (3, 7, 7), 0),
    ("pad", "pad: {padding: [1, 0, 2, 1], mode: reflect}", (3, 5, 5), (3, 8, 6), 0),
    ("pad", "pad: {padding: [2, 4], mode: circular}", (2, 4), (2, 10), 0),
    ("pad", "pad: {padding: [0, 1], mode: replicate}", (1, 3, 3, 3), (1, 3, 3, 4), 0),
    ("reshape", "reshape: [-1, 7, 7]", (2, 4, 49), (8, 7, 7), 0),
    ("reshape", "reshape: {shape: [6, 4], sequence: true}", (24,), (6, 4), 0),
    ("permute", "permute: [1, 2, 0]", (3, 4, 5), (4, 5, 3), 0),
    ("identity", "identity", (8, 4, 4), (8, 4, 4), 0),
    # ConvNeXt's pointwise nn.Linear(96, 384) at each of the 56x56 positions (between its permutes)
    ("dense", "dense: {units: 384, axes: channels}", (96, 56, 56), (384, 56, 56), 37_248),
]


def sizes(shape) -> tuple:
    """Plain sizes: one tuple, or one per output of a split."""
    return tuple(map(tuple, shape)) if isinstance(shape, Outputs) else tuple(shape)


@pytest.mark.parametrize("kind,fragment,input_shape,output,params", LAYER_TABLE,
                         ids=[f"{row[0]}-{i}" for i, row in enumerate(LAYER_TABLE)])
def test_layer(kind, fragment, input_shape, output, params):
    result = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)))
    stats = result.layers[0]
    assert stats.kind == kind
    assert sizes(stats.output_shape) == output
    assert stats.params == params


def test_every_registered_kind_has_a_row():
    assert set(REGISTRY) <= {row[0] for row in LAYER_TABLE}


@pytest.mark.parametrize("fragment,neurons", [
    ("relu", 0), ("dropout: 0.1", 0), ("flatten", 0),                 # create no new neurons
    ("maxpool: 2", 8 * 2 * 2), ("batchnorm", 8 * 4 * 4), ("lrn: 3", 8 * 4 * 4),  # pools and norms count
])
def test_neuron_convention(fragment, neurons):
    result = archcalc.analyze(archcalc.loads(spec_text((8, 4, 4), fragment)))
    assert result.totals.neurons == neurons


def test_huge_counts_are_exact_integers():
    result = archcalc.analyze(archcalc.loads(spec_text((1_000_000,), "dense: 1000000", "dense: 1000000")))
    assert result.totals.params == 2 * (10**12 + 10**6)
    assert isinstance(result.totals.params, int)
    assert result.totals.param_bytes == 8 * (10**12 + 10**6)


def test_batchnorm_buffers_are_not_params():
    """nn.BatchNorm2d(64): parameters weight, bias (64 each); buffers running_mean, running_var (64
    each) and num_batches_tracked (one int64, 8 bytes in any dtype)."""
    result = archcalc.analyze(archcalc.loads(spec_text((64, 8, 8), "batchnorm")))
    assert result.totals.params == 128 and result.totals.buffers == 129
    assert result.totals.buffer_bytes == 128 * 4 + 8


def test_defaults_apply_to_bare_kinds_and_family():
    text = spec_text((3, 32, 32), "conv2d: 8", "conv", defaults="{conv: {filters: 4, kernel: 3, padding: same}}")
    result = archcalc.analyze(archcalc.loads(text))
    assert [tuple(s.output_shape) for s in result.layers] == [(8, 32, 32), (4, 32, 32)]


def test_automatic_names_and_repeat():
    text = spec_text((3, 8, 8), "conv: {filters: 2, kernel: 3, padding: same, name: first}",
                     "repeat: {times: 2, layers: [{conv: {filters: 2, kernel: 3, padding: same}}, relu]}",
                     "maxpool: 2", "flatten", "dense: 3")
    result = archcalc.analyze(archcalc.loads(text))
    assert [s.name for s in result.layers] == ["first", "conv2", "relu1", "conv3", "relu2", "pool1",
                                               "flatten1", "fc1"]
    assert result.layers[1].node.group == (("repeat1", 1),)


def test_trainable_false():
    result = archcalc.analyze(archcalc.loads(spec_text((10,), "dense: {units: 5, trainable: false}", "dense: 2")))
    assert result.totals.params == 55 + 12
    assert result.totals.trainable_params == 12


@pytest.mark.parametrize("dtype,batch,expected", [("float32", 1, 4 * 10), ("float16", 3, 2 * 30),
                                                  ("float64", 2, 8 * 20), ("int8", 5, 50)])
def test_activation_bytes(dtype, batch, expected):
    result = archcalc.analyze(archcalc.loads(spec_text((4,), "dense: 10")), batch=batch, dtype=dtype)
    assert result.totals.activation_bytes == expected


def test_residual_add_and_concat():
    text = """
input: [8, 16, 16]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, name: a}
  - conv: {filters: 8, kernel: 3, padding: same, name: b}
  - add: {inputs: [b, input], name: sum}
  - conv: {filters: 4, kernel: 1, inputs: input, name: side}
  - concat: {inputs: [sum, side]}
"""
    result = archcalc.analyze(archcalc.loads(text))
    assert result.layer("sum").output_shape == FeatureMap((8, 16, 16))
    assert result.layer("sum").node.inputs == ("b", "input")
    assert result.output_shape == FeatureMap((12, 16, 16))
    assert result.layer("concat1").neurons == 0 and result.layer("sum").neurons == 8 * 16 * 16
