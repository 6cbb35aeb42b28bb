"""The layer-kind table: one row per case, at least one per registered kind; every per-kind test
derives from it, so a new kind is one class in archcalc/layers/ plus one row here.

A row: (kind, fragment, input, output, params, macs, flops)
- kind: the registered name the row's layer must analyze as (an alias in the fragment is fine);
- fragment: the layer as written in a spec's list; after a new line and '  - ', any layer a spec
  needs with it (a layer that reads nothing, parameter, needs another that reads the network input);
- input: the network input, a tuple (a channels-first map or a vector) or a dict (a sequence);
- output: the row's first layer's output shape (a tuple of shapes for a layer with several outputs);
- params: its parameter count, as PyTorch's module counts it (nn.Conv2d, nn.Linear, ...);
- macs, flops: one sample's multiply-accumulates and FLOPs by the kind's stated rule
  (analysis/conventions.py; the FLOP conventions in docs/conventions.md), worked out by hand.
Expected numbers come from PyTorch, a paper or the stated rule, never from archcalc's own output.

What derives from it (add nothing there for a new kind):
  test_layers.py      output shape, params, macs and flops of every row; every kind has a row
  test_backend.py     every row built and run in PyTorch on the CPU: its shape and params agree
  test_compute.py     PyTorch's FLOP counter agrees with the MACs of every row it counts
  test_sharing.py     every row's tensors are its PyTorch module's parameters, name for name
  test_channels.py    every kind that moves values says whether PyTorch copies them
  test_explain_solve_diff.py, test_render.py, test_wording.py, test_receptive.py, test_fuzz.py
                      every row explains, renders, words its arithmetic, has a receptive field,
                      and seeds the fuzzer's networks
"""
from typing import NamedTuple

import pytest

from archcalc.layers import Outputs


class Row(NamedTuple):
    kind: str
    fragment: str
    input_shape: tuple | dict
    output: tuple
    params: int
    macs: int
    flops: int


ROWS = [
    # kind, fragment, input, output, params, macs, flops
    # conv: MACs = output elements x C/groups x kernel volume; FLOPs 2 x MACs + a bias per output
    # element (+ one per element for an activation attribute). AlexNet's conv1: 96 x 55 x 55 = 290,400
    ("conv", "conv: {filters: 96, kernel: 11, stride: 4}", (3, 227, 227), (96, 55, 55), 34_944,
     290_400 * 3 * 121, 2 * 290_400 * 363 + 290_400),
    ("conv", "conv: {filters: 96, kernel: 11, stride: 4, activation: relu}", (3, 227, 227), (96, 55, 55), 34_944,
     290_400 * 363, 2 * 290_400 * 363 + 290_400 + 290_400),
    ("conv", "conv: {filters: 4, kernel: 3, padding: same, stride: 2}", (2, 9), (4, 5), 28, 20 * 2 * 3, 2 * 120 + 20),
    ("conv", "conv: {filters: 8, kernel: [3, 5], padding: [1, 2]}", (4, 10, 12), (8, 10, 12), 488,
     960 * 4 * 15, 2 * 960 * 60 + 960),
    ("conv", "conv: {filters: 6, kernel: 3, dilation: 2, groups: 3, bias: false}", (3, 16, 16), (6, 12, 12), 54,
     6 * 12 * 12 * 1 * 9, 2 * 6 * 12 * 12 * 9),
    ("conv", "conv: {filters: 2, kernel: 3, padding: 1, padding_mode: reflect}", (1, 5), (2, 5), 8, 10 * 3, 2 * 30 + 10),
    ("conv", "conv: {filters: 4, kernel: 1, activation: hardswish}", (2, 3, 3), (4, 3, 3), 12,
     36 * 2, 2 * 72 + 36 + 36),
    ("conv1d", "conv1d: {filters: 5, kernel: 5, padding: same, bias: false}", (1, 100), (5, 100), 25,
     500 * 5, 2 * 2500),
    ("conv2d", "conv2d: {filters: 6, kernel: 5}", (1, 28, 28), (6, 24, 24), 156, 3456 * 25, 2 * 3456 * 25 + 3456),
    ("conv3d", "conv3d: {filters: 2, kernel: 3, stride: [1, 2, 2], padding: 1}", (1, 8, 17, 17), (2, 8, 9, 9), 56,
     1296 * 27, 2 * 1296 * 27 + 1296),
    # pools: no MACs; one operation per value read (compared or added)
    ("maxpool", "maxpool: {kernel: 3, stride: 2}", (96, 55, 55), (96, 27, 27), 0, 0, 96 * 27 * 27 * 9),
    ("maxpool", "maxpool: {kernel: 3, stride: 2, rounding: ceil}", (16, 112, 112), (16, 56, 56), 0,
     0, 16 * 56 * 56 * 9),
    ("avgpool", "avgpool: 2", (6, 24, 24), (6, 12, 12), 0, 0, 6 * 12 * 12 * 4),
    ("globalavgpool", "globalavgpool", (512, 7, 7), (512,), 0, 0, 512 * 49),
    ("globalmaxpool", "globalmaxpool", (64, 9), (64,), 0, 0, 64 * 9),
    # nn.AdaptiveAvgPool2d: windows [floor(i*13/6), ceil((i+1)*13/6)) are 3 wide, 6 of them per axis;
    # on 5 -> 2 the windows [0, 3) and [2, 5) overlap
    ("adaptiveavgpool", "adaptiveavgpool: {output: [6, 6]}", (256, 13, 13), (256, 6, 6), 0, 0, 256 * 18 * 18),
    ("adaptiveavgpool", "adaptiveavgpool: 2", (1, 5, 5), (1, 2, 2), 0, 0, 3 * 3 * 4),
    ("adaptivemaxpool", "adaptivemaxpool: 1", (8, 5, 5), (8, 1, 1), 0, 0, 8 * 25),
    ("flatten", "flatten", (256, 6, 6), (9216,), 0, 0, 0),
    # dense: in x units MACs (per step on a sequence, per position over channels), a bias add per output
    ("dense", "dense: 4096", (9216,), (4096,), 37_752_832, 9216 * 4096, 2 * 9216 * 4096 + 4096),
    ("dense", "fc: {units: 10, bias: false}", (784,), (10,), 7_840, 7840, 2 * 7840),
    ("dropout", "dropout: 0.5", (4096,), (4096,), 0, 0, 0),
    # lrn: 2*size + 3 per element (square and add each neighbour, scale and shift, power, divide)
    ("lrn", "lrn: {size: 5}", (96, 27, 27), (96, 27, 27), 0, 0, 13 * 96 * 27 * 27),
    # norms: batchnorm folds into a*x + b at inference (2 per element); per-sample statistics
    # cost 5 per element, + 2 with gamma and beta
    ("batchnorm", "batchnorm", (64, 56, 56), (64, 56, 56), 128, 0, 2 * 64 * 56 * 56),
    ("layernorm", "layernorm", (10, 4), (10, 4), 80, 0, 7 * 40),
    # activations: one operation per element
    ("relu", "relu", (8, 4, 4), (8, 4, 4), 0, 0, 128),
    ("tanh", "tanh", (8,), (8,), 0, 0, 8),
    ("sigmoid", "sigmoid", (8,), (8,), 0, 0, 8),
    ("elu", "elu: 0.5", (8,), (8,), 0, 0, 8),
    ("leakyrelu", "leakyrelu: {negative_slope: 0.2}", (8,), (8,), 0, 0, 8),
    ("gelu", "gelu", (8,), (8,), 0, 0, 8),
    ("softmax", "softmax", (10,), (10,), 0, 0, 10),
    # merges: n inputs, n - 1 operations per output element; a concat only moves values
    ("add", "add: {inputs: [input, input]}", (8, 4, 4), (8, 4, 4), 0, 0, 128),
    ("concat", "concat: {inputs: [input, input]}", (3, 4, 4), (6, 4, 4), 0, 0, 0),
    # recurrent: PyTorch's nn.RNN/LSTM/GRU(10, 20, ...) parameter counts; bias: single is the
    # course's and min-char-rnn's H*F + H*H + H. Every step multiplies every weight matrix once
    # (MACs = steps x weights) and adds every bias vector (the gates' element-wise work is not counted)
    ("rnn", "rnn: 20", {"steps": 7, "features": 10}, (7, 20), 640, 7 * (20 * 10 + 20 * 20), 2 * 7 * 600 + 7 * 40),
    ("rnn", "rnn: {hidden: 20, bias: single, returns: last}", {"steps": 7, "features": 10}, (20,), 620,
     7 * 600, 2 * 7 * 600 + 7 * 20),
    # 2 layers x 2 directions x 4 gates x 2 bias vectors x 20 = 640 biases, 14,400 weights
    ("lstm", "lstm: {hidden: 20, layers: 2, bidirectional: true, returns: last}",
     {"steps": 7, "features": 10}, (40,), 15_040, 7 * 14_400, 2 * 7 * 14_400 + 7 * 640),
    ("gru", "gru: {hidden: 20, layers: 3, bias: false}", {"steps": 7, "features": 10}, (7, 20), 6_600,
     7 * 6_600, 2 * 7 * 6_600),
    ("embedding", "embedding: {vocabulary: 1000, dim: 64}", {"steps": 12}, (12, 64), 64_000, 0, 0),  # a lookup
    ("repeatvector", "repeatvector: 5", (8,), (5, 8), 0, 0, 0),
    ("dense", "dense: 4", {"steps": 7, "features": 10}, (7, 4), 44, 7 * 10 * 4, 2 * 280 + 28),
    ("layernorm", "layernorm", {"steps": 7, "features": 10}, (7, 10), 20, 0, 7 * 70),
    # nn.ConvTranspose2d(64, 32, 2, stride=2) on 16x16; (6, 4, 3, stride 2, padding 1,
    # output_padding 1, groups 2) on 7x9. MACs = input elements x K/groups x kernel volume
    ("convtranspose", "convtranspose: {filters: 32, kernel: 2, stride: 2}", (64, 16, 16), (32, 32, 32), 8_224,
     64 * 256 * 32 * 4, 2 * 64 * 256 * 128 + 32 * 32 * 32),
    ("convtranspose", "upconv: {filters: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 2}",
     (6, 7, 9), (4, 14, 18), 112, 6 * 63 * 2 * 9, 2 * 6 * 63 * 18 + 4 * 14 * 18),
    ("upsample", "upsample: 2", (8, 5, 7), (8, 10, 14), 0, 0, 0),  # nearest copies
    # --- issue 13, element-wise merges and learned tensors (kinds-a) ---
    # broadcasting itself: tests/test_elementwise.py against torch.broadcast_shapes
    ("multiply", "multiply: {inputs: [input, input, input]}", (8, 4, 4), (8, 4, 4), 0, 0, 2 * 128),
    ("subtract", "subtract: {inputs: [input, input]}", {"steps": 5, "features": 3}, (5, 3), 0, 0, 15),
    # torchvision's ConvNeXt layer_scale: nn.Parameter(torch.ones(dim, 1, 1) * 1e-6), 96 in stage 1;
    # one multiply per element
    ("scale", "scale: 1.0e-6", (96, 56, 56), (96, 56, 56), 96, 0, 96 * 56 * 56),
    ("scale", "scale", {"steps": 7, "features": 10}, (7, 10), 10, 0, 70),
    # parameter reads no input, so a second layer reads the network input with it (row = the first
    # layer); torchvision's ViT-B/16: class_token [1, 1, 768] and pos_embedding [1, 197, 768] per batch
    ("parameter", "parameter: {shape: {steps: 1, features: 768}}\n  - concat: {inputs: [param1, input], axis: 0}",
     {"steps": 196, "features": 768}, (1, 768), 768, 0, 0),
    ("parameter", "parameter: [8, 1, 1]\n  - multiply: {inputs: [input, param1]}", (8, 4, 4), (8, 1, 1), 8, 0, 0),
    # --- end kinds-a merges ---
    # --- issue 13, activations (kinds-a): torch.nn's modules of the same names; nn.PReLU() has 1
    # parameter, nn.PReLU(8) 8; one operation per element, parameters or not ---
    ("silu", "silu", (8, 4, 4), (8, 4, 4), 0, 0, 128),
    ("silu", "swish", (8,), (8,), 0, 0, 8),
    ("hardswish", "hardswish", (16, 5, 5), (16, 5, 5), 0, 0, 400),
    ("hardsigmoid", "hardsigmoid", (16, 1, 1), (16, 1, 1), 0, 0, 16),
    ("relu6", "relu6", (32, 7), (32, 7), 0, 0, 224),
    ("mish", "mish", (8,), (8,), 0, 0, 8),
    ("gelu", "gelu: {approximate: tanh}", {"steps": 5, "features": 8}, (5, 8), 0, 0, 40),
    ("softplus", "softplus: {beta: 2, threshold: 10}", (8,), (8,), 0, 0, 8),
    ("softmax", "softmax: {axis: 0}", {"steps": 6, "features": 4}, (6, 4), 0, 0, 24),
    ("logsoftmax", "logsoftmax", (10,), (10,), 0, 0, 10),
    ("logsoftmax", "log_softmax: {axis: 2}", (3, 4, 5), (3, 4, 5), 0, 0, 60),
    ("abs", "abs", (3, 5), (3, 5), 0, 0, 15),
    ("prelu", "prelu", (8, 4, 4), (8, 4, 4), 1, 0, 128),
    ("prelu", "prelu: 8", (8, 4, 4), (8, 4, 4), 8, 0, 128),
    # --- end kinds-a activations ---
    # --- issue 13, norms (kinds-a): nn.LayerNorm(96) (ConvNeXt's LayerNorm2d), nn.GroupNorm(8, 32),
    # nn.RMSNorm(16), nn.InstanceNorm2d(16) (affine false), nn.InstanceNorm1d(16, affine=True);
    # rmsnorm: 3 per element, + 1 with its weight; an instancenorm that keeps running statistics
    # folds them at inference: 2, as batchnorm ---
    ("layernorm", "layernorm: {axes: channels, eps: 1.0e-6}", (96, 56, 56), (96, 56, 56), 192, 0, 7 * 96 * 56 * 56),
    ("layernorm", "layernorm: {axes: all}", {"steps": 7, "features": 10}, (7, 10), 140, 0, 7 * 70),
    ("groupnorm", "groupnorm: 8", (32, 10, 10), (32, 10, 10), 64, 0, 7 * 3200),
    ("groupnorm", "groupnorm: {groups: 4, affine: false}", (8, 6), (8, 6), 0, 0, 5 * 48),
    ("rmsnorm", "rmsnorm", {"steps": 7, "features": 16}, (7, 16), 16, 0, 4 * 112),
    ("rmsnorm", "rmsnorm: {affine: false}", {"steps": 7, "features": 16}, (7, 16), 0, 0, 3 * 112),
    ("rmsnorm", "rmsnorm: {axes: channels, eps: 1.0e-6}", (8, 5, 5), (8, 5, 5), 8, 0, 4 * 200),
    ("instancenorm", "instancenorm", (16, 9, 9), (16, 9, 9), 0, 0, 5 * 16 * 81),
    ("instancenorm", "instancenorm: {affine: true, track_running_stats: true}", (16, 9), (16, 9), 32, 0, 2 * 144),
    # --- end kinds-a norms ---
    # --- layers that move or view values (channels.py): torch.split/chunk (one shape per output),
    # nn.ChannelShuffle, nn.ZeroPad/ReflectionPad/CircularPad/ReplicationPad with F.pad's side order,
    # reshape with -1, permute, nn.Identity; ShuffleNetV2's 116 channels halved at 28x28. No arithmetic
    ("split", "split: {sizes: [58, 58]}", (116, 28, 28), ((58, 28, 28), (58, 28, 28)), 0, 0, 0),
    ("split", "split: {sizes: [1, 3], axis: 2}", (2, 5, 4), ((2, 5, 1), (2, 5, 3)), 0, 0, 0),
    ("chunk", "chunk: 2", (116, 28, 28), ((58, 28, 28), (58, 28, 28)), 0, 0, 0),
    ("chunk", "chunk: {chunks: 3, axis: 1}", (4, 7), ((4, 3), (4, 3), (4, 1)), 0, 0, 0),
    ("channel_shuffle", "channel_shuffle: 2", (116, 28, 28), (116, 28, 28), 0, 0, 0),
    ("pad", "pad: 1", (3, 5, 5), (3, 7, 7), 0, 0, 0),
    ("pad", "pad: {padding: [1, 0, 2, 1], mode: reflect}", (3, 5, 5), (3, 8, 6), 0, 0, 0),
    ("pad", "pad: {padding: [2, 4], mode: circular}", (2, 4), (2, 10), 0, 0, 0),
    ("pad", "pad: {padding: [0, 1], mode: replicate}", (1, 3, 3, 3), (1, 3, 3, 4), 0, 0, 0),
    ("reshape", "reshape: [-1, 7, 7]", (2, 4, 49), (8, 7, 7), 0, 0, 0),
    ("reshape", "reshape: {shape: [6, 4], sequence: true}", (24,), (6, 4), 0, 0, 0),
    ("permute", "permute: [1, 2, 0]", (3, 4, 5), (4, 5, 3), 0, 0, 0),
    ("identity", "identity", (8, 4, 4), (8, 4, 4), 0, 0, 0),
    # ConvNeXt's pointwise nn.Linear(96, 384) at each of the 56x56 positions (between its permutes)
    ("dense", "dense: {units: 384, axes: channels}", (96, 56, 56), (384, 56, 56), 37_248,
     384 * 3136 * 96, 2 * 384 * 3136 * 96 + 384 * 3136),
    # --- issue 14, attention: nn.MultiheadAttention(768, 12) (ViT-B, BERT-base, GPT-2) holds 2,362,368;
    # TinyLlama's LlamaAttention (2048, 32 heads, 4 KV heads, no bias) q 2048x2048, k and v 256x2048, o
    # 2048x2048; nn.MultiheadAttention(64, 4, bias=False) 16,384. MACs: the projections T*d*(q + 2kv) + T*q*d,
    # then Q Kᵀ and A V, heads*T*T*head_dim each (full T x T when causal); FLOPs: 2 x MACs + a bias add
    # per projected element + per score (heads*T*T) the scale and the softmax + rotary 3 per q and k element
    ("attention", "attention: 12", {"steps": 197, "features": 768}, (197, 768), 2_362_368,
     4 * 197 * 768 * 768 + 2 * 12 * 197 * 197 * 64,
     2 * (4 * 197 * 768 * 768 + 2 * 12 * 197 * 197 * 64) + 4 * 197 * 768 + 2 * 12 * 197 * 197),
    ("attention", "attention: {heads: 32, kv_heads: 4, qkv: separate, bias: false, causal: true, rotary: 10000}",
     {"steps": 16, "features": 2048}, (16, 2048), 9_437_184,
     2 * 16 * 2048 * 2048 + 2 * 16 * 2048 * 256 + 2 * 32 * 16 * 16 * 64,
     2 * (2 * 16 * 2048 * 2048 + 2 * 16 * 2048 * 256 + 2 * 32 * 16 * 16 * 64) + 2 * 32 * 16 * 16
     + 3 * 16 * (2048 + 256)),
    ("attention", "attention: {heads: 4, bias: false, dropout: 0.1}", {"steps": 5, "features": 64}, (5, 64), 16_384,
     4 * 5 * 64 * 64 + 2 * 4 * 5 * 5 * 16, 2 * (4 * 5 * 64 * 64 + 2 * 4 * 5 * 5 * 16) + 2 * 4 * 5 * 5),
    # tokens and positions: GPT-2's wpe nn.Embedding(1024, 768) whatever T, an add per element; the class
    # token x[:, 0] (a view); the mean over the steps, one operation per value read
    ("positions", "positions: 1024", {"steps": 10, "features": 768}, (10, 768), 786_432, 0, 10 * 768),
    ("sinusoidal", "sinusoidal", {"steps": 10, "features": 16}, (10, 16), 0, 0, 160),
    ("select", "select", {"steps": 197, "features": 768}, (768,), 0, 0, 0),
    ("select", "select: -1", {"steps": 5, "features": 8}, (8,), 0, 0, 0),
    ("mean", "mean", {"steps": 7, "features": 10}, (10,), 0, 0, 70),
    # an imported operation without a kind (archcalc import --allow-opaque): the shape and parameters
    # traced, MACs and FLOPs not counted. torchvision's Swin-T ShiftedWindowAttention(96, [7, 7], [3, 3], 3)
    # holds 37,755 (qkv 96x288 + 288, proj 96x96 + 96, a 13x13x3 relative position bias table), on the
    # channels-last 56x56x96 it reads
    ("opaque", "opaque: {op: torchvision.models.swin_transformer.shifted_window_attention, shape: [56, 56, 96], "
     "parameters: 37755}", (56, 56, 96), (56, 56, 96), 37_755, 0, 0),
]

LAYER_TABLE = [Row(*row) for row in ROWS]
IDS = [f"{row.kind}-{i}" for i, row in enumerate(LAYER_TABLE)]


def each_row(names: str, built: bool = False):
    """pytest.mark.parametrize over every row of the table, with the Row fields ``names``
    (comma-separated, as parametrize takes them) as the test's arguments; ``built``: only the rows
    PyTorch can build (not opaque, which has no PyTorch form: test_backend checks the refusal)."""
    from archcalc.layers import lookup

    fields = names.split(",")
    rows = [(row, id_) for row, id_ in zip(LAYER_TABLE, IDS) if not (built and lookup(row.kind).opaque)]
    return pytest.mark.parametrize(names, [tuple(getattr(row, field) for field in fields) for row, _ in rows],
                                   ids=[id_ for _, id_ in rows])


def sizes(shape) -> tuple:
    """Plain sizes: one tuple, or one per output of a split."""
    return tuple(map(tuple, shape)) if isinstance(shape, Outputs) else tuple(shape)
