"""Activation checkpointing (--checkpoint): the memory schedule's non-reentrant checkpoint model
(analysis/schedule.py's _Frame) against what PyTorch holds when the built model runs those
segments under torch.utils.checkpoint.checkpoint(use_reentrant=False) (backend/graph.py), and the
FLOPs backward runs again against PyTorch's FlopCounterMode.

The measured side is PyTorch's own allocations on CPU (backend/memtrack.py) and PyTorch's own
FLOP counter; nothing here is copied from archcalc's output.
"""
import shutil

import pytest
import torch
from conftest import SPECS, run_cli, write_spec
from torch.utils.flop_counter import FlopCounterMode

import archcalc
from archcalc.analysis.checkpoint import segments
from archcalc.analysis.schedule import max_batch, schedule
from archcalc.backend.graph import Network
from archcalc.backend.memtrack import measured_peaks
from archcalc.backend.plan import make_plan
from archcalc.backend.verification import sample_inputs
from archcalc.errors import UsageError

LOW, HIGH = 0.97, 1.03

RESNET_LIKE = """\
name: resnet-like
input: [3, 32, 32]
defaults:
  conv: {bias: false}
blocks:
  basic:
    params: {filters: null}
    layers:
      - conv: {filters: $filters, kernel: 3, padding: 1, name: conv1}
      - batchnorm: {name: bn1}
      - relu
      - conv: {filters: $filters, kernel: 3, padding: 1, name: conv2}
      - batchnorm: {name: bn2}
      - add: {inputs: [bn2, in]}
      - relu
layers:
  - conv: {filters: 16, kernel: 3, padding: 1, name: stem}
  - batchnorm: {name: stem_bn}
  - relu
  - repeat: {name: stage, times: 3, layers: [basic: 16]}
  - globalavgpool
  - dense: {units: 10, name: fc}
"""
SHARED = """\
name: shared mlp
input: [64]
layers:
  - dense: {units: 64, activation: relu, name: a}
  - dense: {units: 64, activation: tanh, name: mid}
  - dense: {units: 64, activation: relu, shares: a, name: b}
  - dense: {units: 10, name: out}
"""
FROZEN = """\
name: frozen middle
input: [64]
layers:
  - dense: {units: 256, activation: relu, name: a}
  - dense: {units: 256, trainable: false, name: mid}
  - relu
  - dense: {units: 10, name: out}
"""
ENCODER = """\
name: small encoder
include: blocks/transformer.yaml
input: {steps: 32, features: 64}
layers:
  - repeat:
      name: layers
      times: 3
      layers: [encoder_layer: {width: 64, heads: 4, mlp: 256}]
  - layernorm: {name: ln}
"""


@pytest.fixture
def spec_files(tmp_path):
    """{name: path} of the table's specs: LeNet-5 and MobileNetV2 as shipped, a ResNet-like repeat of
    basic blocks, three transformer encoder layers (specs/blocks/transformer.yaml's encoder_layer) at
    small sizes."""
    shutil.copytree(SPECS / "blocks", tmp_path / "blocks")
    return {"lenet5": SPECS / "lenet5.yaml", "mobilenet_v2": SPECS / "mobilenet_v2.yaml",
            "resnet_like": write_spec(tmp_path, RESNET_LIKE, "resnet_like.yaml"),
            "shared": write_spec(tmp_path, SHARED, "shared.yaml"), "frozen": write_spec(tmp_path, FROZEN, "frozen.yaml"),
            "encoder": write_spec(tmp_path, ENCODER, "encoder.yaml")}


def checkpointed(analysis, choices):
    return tuple(segment.layers for segment in segments(analysis, choices))


# (spec, batch, segment choices (none: the step as it is), optimizer, mixed precision); the quick
# tier keeps one case per spec and some under autocast
TABLE = [
    ("lenet5", 32, ["every:2"], "sgd", None),
    ("lenet5", 32, ["conv1", "fc1"], "adam", None),
    ("resnet_like", 8, ["stage"], "sgd", None),
    ("resnet_like", 8, ["basic2"], "adam", None),
    ("resnet_like", 8, ["every:3"], "sgd", None),
    ("resnet_like", 8, ["stage", "stem"], "sgd", None),
    ("encoder", 8, ["layers"], "adam", None),
    ("encoder", 8, ["encoder_layer2"], "sgd", None),
    ("encoder", 8, ["every:4"], "adam", None),
    ("encoder", 8, ["encoder_layer1.self_attention"], "sgd", None),
    # under torch.autocast the rerun casts the segment's weights again (its own autocast region,
    # whose cache starts empty) and keeps only the copies the ops save
    ("lenet5", 32, ["every:2"], "sgd", "bf16"),
    ("lenet5", 32, ["conv1", "fc1"], "adam", "fp16"),
    ("resnet_like", 8, ["stage"], "sgd", "bf16"),
    ("resnet_like", 8, ["basic2"], "adam", "fp16"),
    ("resnet_like", 8, ["every:3"], "momentum", "bf16"),
    ("mobilenet_v2", 2, ["every:10"], "sgd", "bf16"),   # depthwise and pointwise convolutions, 16 segments
    # a weight shared by two segments: the second's forward reuses the first's cached 16-bit copy,
    # its rerun casts it again; their 16-bit gradients meet in one cast node
    ("shared", 64, ["a", "b"], "adam", "bf16"),
    ("shared", 64, ["a"], "sgd", "fp16"),
    ("shared", 64, ["mid"], "sgd", "bf16"),
    ("shared", 64, [], "sgd", "bf16"),
    # a frozen layer's 16-bit copies are not cached: cast at each use, freed after it unless saved
    ("frozen", 64, ["mid"], "adam", "bf16"),
    ("frozen", 64, [], "sgd", "fp16"),
    # attention under autocast: 16-bit projections, the math kernel's float32 copies of q, k and v
    ("encoder", 8, [], "sgd", "bf16"),
    ("encoder", 8, ["layers"], "adam", "bf16"),
    ("encoder", 8, ["encoder_layer1.self_attention"], "sgd", "bf16"),
]
QUICK = {0, 2, 6, 10, 16, 20}


@pytest.mark.parametrize("spec,batch,choices,optimizer,mixed", [
    pytest.param(*case, marks=[] if index in QUICK else [pytest.mark.slow],
                 id=f"{case[0]}-{'+'.join(case[2])}" + (f"-{case[4]}" if case[4] else ""))
    for index, case in enumerate(TABLE)])
def test_checkpointed_peaks_within_three_percent(spec_files, spec, batch, choices, optimizer, mixed):
    analysis = archcalc.analyze(archcalc.load(str(spec_files[spec])), batch=batch)
    layers = checkpointed(analysis, choices)
    predicted = schedule(analysis, training=True, optimizer=optimizer, device="cpu", checkpoint=layers,
                         mixed_precision=mixed)
    measured = measured_peaks(analysis, train=True, optimizer=optimizer, checkpoint=layers, mixed_precision=mixed)
    for phase in predicted.phases:
        assert LOW <= predicted.peak(phase) / measured[phase] <= HIGH, (phase, predicted.peak(phase), measured[phase])


@pytest.mark.parametrize("spec,choices", [("resnet_like", ["stage"]), ("encoder", ["layers"])])
def test_checkpointing_a_repeat_lowers_the_measured_peak_as_predicted(spec_files, spec, choices):
    """Not a no-op: PyTorch's peak drops, and by what the schedule says (within 3% of the drop)."""
    analysis = archcalc.analyze(archcalc.load(str(spec_files[spec])), batch=8)
    layers = checkpointed(analysis, choices)
    plain = measured_peaks(analysis, train=True)
    kept = measured_peaks(analysis, train=True, checkpoint=layers)
    saved = max(plain.values()) - max(kept.values())
    assert saved > 0.2 * max(plain.values())
    predicted = (schedule(analysis, training=True, device="cpu").peak()
                 - schedule(analysis, training=True, device="cpu", checkpoint=layers).peak())
    assert LOW <= predicted / saved <= HIGH


@pytest.mark.parametrize("mixed", [None, "bf16"])
def test_max_batch_with_checkpointing_is_what_pytorch_fits(spec_files, mixed):
    """The largest batch a budget fits with the ResNet-like repeat checkpointed: more than without,
    and PyTorch's measured peak at that batch is the schedule's (within the bound) and within the budget."""
    analysis = archcalc.analyze(archcalc.load(str(spec_files["resnet_like"])))
    layers = checkpointed(analysis, ["stage"])
    budget = 3 * 10**6
    found = max_batch(analysis, budget, "sgd", mixed, "cpu", layers)
    assert found.checkpointed > found.training > 0
    at = analysis.at_batch(found.checkpointed)
    predicted = schedule(at, training=True, device="cpu", mixed_precision=mixed, checkpoint=layers).peak()
    measured = max(measured_peaks(at, train=True, checkpoint=layers, mixed_precision=mixed).values())
    assert LOW <= predicted / measured <= HIGH and measured <= budget


def backward_flops(analysis, layers) -> int:
    """PyTorch's FlopCounterMode total over one backward pass of the model, its segments checkpointed."""
    plan = make_plan(analysis)
    torch.manual_seed(0)
    network = Network(plan, checkpoint=layers)
    inputs = sample_inputs(torch, plan, analysis.batch, torch.float32, "cpu", None)
    loss = network(*inputs).sum()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("spec,choices", [
    ("lenet5", ["every:1"]), ("lenet5", ["conv1", "conv2"]),
    pytest.param("resnet_like", ["stage"], marks=pytest.mark.slow),
    pytest.param("resnet_like", ["every:3"], marks=pytest.mark.slow),
    ("encoder", ["layers"]), pytest.param("encoder", ["encoder_layer2"], marks=pytest.mark.slow),
    pytest.param("encoder", ["every:4"], marks=pytest.mark.slow)])
def test_recomputed_flops_are_what_flop_counter_sees_backward_add(spec_files, spec, choices):
    """The backward's FLOPs with the segments checkpointed minus without: the forward products the
    rerun computes again (FlopCounterMode counts matrix products and convolutions, 2 per multiply-add)."""
    analysis = archcalc.analyze(archcalc.load(str(spec_files[spec])), batch=4)
    layers = checkpointed(analysis, choices)
    rerun = schedule(analysis, training=True, device="cpu", checkpoint=layers)
    assert backward_flops(analysis, layers) - backward_flops(analysis, ()) == rerun.recomputed_flops > 0


def test_a_segment_ending_in_a_product_is_not_recomputed_there(spec_files):
    """PyTorch stops the rerun at the last tensor it needs: a linear or a convolution at a segment's
    end saves only its input, so it is never computed again (lenet5's last dense: its own segment)."""
    analysis = archcalc.analyze(archcalc.load(str(spec_files["lenet5"])), batch=4)
    alone = schedule(analysis, training=True, device="cpu", checkpoint=checkpointed(analysis, ["conv1"]))
    assert alone.recomputed == ("conv1",)        # conv1 computes tanh after it: tanh's output is saved
    ending = schedule(analysis, training=True, device="cpu", checkpoint=(("fc3",),))
    assert ending.recomputed == ("fc3",)         # fc3's softmax saves its output
    assert backward_flops(analysis, (("fc3",),)) - backward_flops(analysis, ()) == ending.recomputed_flops


def test_an_attention_ending_a_segment_is_recomputed_but_its_output_projection(spec_files):
    """A lone attention layer: the rerun stops before its output projection (it keeps only its
    input), so that product is not computed again: FlopCounterMode sees the rest, exactly."""
    analysis = archcalc.analyze(archcalc.load(str(spec_files["encoder"])), batch=4)
    layers = checkpointed(analysis, ["encoder_layer1.self_attention"])
    rerun = schedule(analysis, training=True, device="cpu", checkpoint=layers)
    assert rerun.recomputed == ("encoder_layer1.self_attention",) and not rerun.cut_short
    stats = next(stats for stats in analysis.layers if stats.name == "encoder_layer1.self_attention")
    assert rerun.recomputed_flops < 2 * 4 * stats.macs
    assert backward_flops(analysis, layers) - backward_flops(analysis, ()) == rerun.recomputed_flops


def test_gpt2_repeat_is_one_segment_per_iteration(specs_dir):
    analysis = archcalc.analyze(archcalc.load(str(specs_dir / "gpt2.yaml")))
    found = segments(analysis, ["h"])
    assert [segment.name for segment in found] == [f"h[{i}]" for i in range(1, 13)]
    assert all(len(segment.layers) == 10 for segment in found)
    assert found[2].layers[0] == "decoder_layer3.ln_1" and found[2].layers[-1] == "decoder_layer3.add2"
    every = segments(analysis, ["every:40"])
    assert [len(segment.layers) for segment in every] == [40, 40, 40, 5]


@pytest.mark.parametrize("choice,message,hint", [
    ("hh", "no repeat, block instance or layer is named 'hh'", "did you mean 'h'"),
    ("decoder_layer13", "named 'decoder_layer13'", "'decoder_layer12'"),
    ("every:0", "cannot read '0' as a number of layers", "every:4"),
    ("every:four", "cannot read 'four'", "every:4"),
])
def test_unknown_segments_are_refused_with_the_nearest_names(specs_dir, choice, message, hint):
    result = run_cli("memory", specs_dir / "gpt2.yaml", "--train", "--checkpoint", choice)
    assert result.exit_code == 2
    assert message in result.output and hint in result.output


def test_refusals(specs_dir, spec_files):
    lenet = specs_dir / "lenet5.yaml"
    result = run_cli("memory", lenet, "--checkpoint", "conv1")
    assert result.exit_code == 2 and "add --train" in result.output
    result = run_cli("run", lenet, "--checkpoint", "conv1", "--device", "cpu")
    assert result.exit_code == 2 and "add --memory and --train" in result.output
    result = run_cli("memory", spec_files["resnet_like"], "--train", "--checkpoint", "stage", "--checkpoint", "every:3")
    assert result.exit_code == 2 and "both hold layer" in result.output
    for command in (("memory", "--train"), ("inspect", "--max-batch", "1GB")):
        result = run_cli(*command[:1], spec_files["resnet_like"], *command[1:], "--checkpoint", "stage",
                         "--gpus", "2", "-b", "2")
        assert result.exit_code == 2 and "modelled without activation checkpointing" in result.output
        assert "leave out --checkpoint, or --gpus" in result.output and "Traceback" not in result.output
    analysis = archcalc.analyze(archcalc.load(str(lenet)))
    with pytest.raises(UsageError):
        segments(analysis, ["every:"])


@pytest.mark.parametrize("mixed", [(), ("--mixed-precision", "fp16")])
def test_memory_prints_saved_and_recomputed(spec_files, mixed):
    result = run_cli("memory", spec_files["resnet_like"], "--train", "--optimizer", "sgd", "--batch", "8",
                     "--checkpoint", "stage", "--no-timeline", *mixed)
    assert result.exit_code == 0, result.output
    analysis = archcalc.analyze(archcalc.load(str(spec_files["resnet_like"])), batch=8)
    macs = 2 * 8 * sum(stats.macs for stats in analysis.layers if stats.name.startswith("basic"))
    assert "3 segments: stage[1], stage[2], stage[3]" in result.output
    assert f"recomputed in backward: {macs:,} FLOPs per step" in result.output
    assert "saves " in result.output and "% of the peak" in result.output


@pytest.mark.parametrize("mixed", [(), ("--mixed-precision", "bf16")])
def test_run_memory_compares_the_checkpointed_step(spec_files, mixed):
    result = run_cli("run", spec_files["lenet5"], "--device", "cpu", "--memory", "--train", "--batch", "16",
                     "--checkpoint", "every:2", *mixed)
    assert result.exit_code == 0, result.output
    title = "sgd, mixed bf16, 4 segments checkpointed" if mixed else "sgd, 4 segments checkpointed"
    assert f"training step ({title})" in result.output
    ratios = [float(line.rsplit("ratio ", 1)[1]) for line in result.output.splitlines() if "ratio " in line]
    assert len(ratios) == 3 and all(LOW <= ratio <= HIGH for ratio in ratios)


def test_inspect_train_shows_the_same_checkpointed_schedule(spec_files):
    """inspect --train --checkpoint: the lines and JSON of the schedule memory --checkpoint replays."""
    import json

    path = spec_files["resnet_like"]
    text = run_cli("inspect", path, "--train", "--optimizer", "sgd", "-b", "8", "--checkpoint", "stage").output
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=8)
    layers = checkpointed(analysis, ["stage"])
    plain = schedule(analysis, training=True, optimizer="sgd", device="cuda")
    kept = schedule(analysis, training=True, optimizer="sgd", device="cuda", checkpoint=layers)
    assert "of 3 segments: stage[1], stage[2], stage[3]" in text
    data = json.loads(run_cli("inspect", path, "--train", "--optimizer", "sgd", "-b", "8", "--checkpoint", "stage",
                              "-f", "json").output)["checkpoint"]
    assert (data["peak_bytes_without"], data["peak_bytes"]) == (plain.peak(), kept.peak())
    assert data["saved_bytes"] == plain.peak() - kept.peak() > 0
    assert [segment["name"] for segment in data["segments"]] == ["stage[1]", "stage[2]", "stage[3]"]
    assert data["recomputed_flops"] == kept.recomputed_flops
    result = run_cli("inspect", path, "--checkpoint", "stage")
    assert result.exit_code == 2 and "of --train and --max-batch; add one of them" in result.output


def test_checkpointed_model_computes_the_same_gradients(tmp_path):
    """The built model with segments under torch.utils.checkpoint is the same function: equal loss
    and parameter gradients, dropout included (checkpoint replays the forward's random state), and
    the memory with dropout's masks recomputed still within the bound."""
    path = write_spec(tmp_path, """\
name: dropout mlp
input: [32]
layers:
  - dense: {units: 256, activation: relu}
  - repeat:
      name: body
      times: 3
      layers:
        - dense: {units: 256, activation: gelu}
        - dropout: 0.3
  - add: {inputs: [fc1, dropout3]}
  - dense: 10
""")
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=64)
    plan = make_plan(analysis)
    inputs = sample_inputs(torch, plan, 64, torch.float32, "cpu", None)
    layers = checkpointed(analysis, ["body"])

    def gradients(segments):
        torch.manual_seed(0)
        network = Network(plan, checkpoint=segments)
        network.train()
        loss = network(*inputs).sum()
        loss.backward()
        return loss.item(), [parameter.grad.clone() for parameter in network.parameters()]

    (plain_loss, plain), (kept_loss, kept) = gradients(()), gradients(layers)
    assert kept_loss == plain_loss
    assert all(torch.equal(a, b) for a, b in zip(plain, kept))
    predicted = schedule(analysis, training=True, device="cpu", checkpoint=layers)
    measured = measured_peaks(analysis, train=True, checkpoint=layers)
    for phase in predicted.phases:
        assert LOW <= predicted.peak(phase) / measured[phase] <= HIGH, phase
