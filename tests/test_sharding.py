"""Per-GPU memory and communication under DDP and ZeRO/FSDP (analysis/sharding.py), against the
ZeRO paper's figures and PyTorch's own bucketing and sharding rules."""
import json
from collections import Counter
from fractions import Fraction
from math import prod

import pytest
from click.testing import CliRunner
from conftest import SPECS, analyze_text, spec_text

import archcalc
from archcalc.analysis.sharding import (
    chunk_rows,
    ddp_buckets,
    layout,
    model_states,
    plan,
    precision,
    ring_factor,
    sharded_memory,
    units,
)
from archcalc.cli import main
from archcalc.units import human_bytes

ZERO_SPEC = SPECS / "zero_7_5b.yaml"
GB = 10 ** 9

# Rajbhandari et al., ZeRO (SC20), Table 1: per-device GB of model states with mixed-precision Adam
# (K = 12) as a function of the data-parallel degree: P_os, P_os+g, P_os+g+p. (N = 1 is plain DP.)
ZERO_TABLE_1 = [
    # params, N, (zero1, zero2, fsdp)
    (7.5e9, 1, ("120", "120", "120")),
    (7.5e9, 4, ("52.5", "41.3", "30")),
    (7.5e9, 16, ("35.6", "21.6", "7.5")),
    (7.5e9, 64, ("31.4", "16.6", "1.88")),
    (7.5e9, 256, ("30.4", "15.4", "0.47")),
    (7.5e9, 1024, ("30.1", "15.1", "0.12")),
    (128e9, 4, ("896", "704", "512")),
    (128e9, 16, ("608", "368", "128")),
    (128e9, 64, ("536", "284", "32")),
    (1e12, 4, ("7000", "5500", "4000")),
    (1e12, 64, ("4187.5", "2218.75", "250")),
    (1e12, 1024, ("4011.7", "2013.7", "15.6")),
]


def as_printed(value: int, paper: str) -> bool:
    """``value`` bytes, in GB, rounds to the paper's figure at the paper's precision."""
    decimals = len(paper.partition(".")[2])
    return abs(value / GB - float(paper)) <= 0.5 * 10 ** -decimals + 1e-9


@pytest.mark.parametrize(("params", "gpus", "figures"), ZERO_TABLE_1)
def test_zero_paper_table_1(params, gpus, figures):
    states = precision("float32", "adam", "fp16")
    assert states.optimizer == 12  # the paper's K for mixed-precision Adam
    for strategy, paper in zip(("zero1", "zero2", "fsdp"), figures):
        assert as_printed(sum(model_states(int(params), strategy, gpus, states)), paper), (strategy, paper)


# Figure 1 of the paper: the 7.5B model on 64 GPUs, 120 / 31.4 / 16.6 / 1.9 GB per GPU
FIGURE_1 = [("ddp", "120", 120 * GB), ("zero1", "31.4", 31_406_250_000), ("zero2", "16.6", 16_640_625_000),
            ("fsdp", "1.9", 1_875_000_000)]


@pytest.mark.parametrize(("strategy", "paper", "exact"), FIGURE_1)
@pytest.mark.parametrize("mixed", ["fp16", "bf16"])
def test_zero_paper_figure_1_from_a_7_5b_spec(strategy, paper, exact, mixed):
    analysis = archcalc.analyze(archcalc.load(str(ZERO_SPEC)), batch=64)
    assert analysis.totals.params == 7_500_000_000
    memory = sharded_memory(analysis, strategy, 64, mixed_precision=mixed)
    assert as_printed(memory.model_state_bytes, paper)
    # the exact bytes are the paper's formulas: (2 + 2 + 12) Psi, 4 Psi + 12 Psi/N, 2 Psi + 14 Psi/N, 16 Psi/N
    assert memory.model_state_bytes == exact


def test_full_precision_states():
    """Without mixed precision: s bytes of weights and gradients, s per optimizer state."""
    def bytes_of(states):
        return states.weight, states.gradient, states.optimizer
    assert bytes_of(precision("float32", "adam", None)) == (4, 4, 8)
    assert bytes_of(precision("float64", "sgd", None)) == (8, 8, 0)
    assert bytes_of(precision("float32", "momentum", "bf16")) == (2, 2, 8)   # master + velocity
    assert model_states(1000, "zero2", 3, precision("float32", "adam", None)) == (4000, 4 * 334, 8 * 334)


# torch.chunk's split of a first axis: sizes from torch.tensor(range(rows)).chunk(N)
CHUNKS = [(10, 4, [3, 3, 3, 1]), (6, 4, [2, 2, 2, 0]), (5, 4, [2, 2, 1, 0]), (1, 2, [1, 0]), (64, 64, [1] * 64),
          (7, 3, [3, 3, 1]), (3, 4, [1, 1, 1, 0])]


@pytest.mark.parametrize(("rows", "gpus", "sizes"), CHUNKS)
def test_chunk_rows_as_torch_chunk(rows, gpus, sizes):
    assert [chunk_rows(rows, gpus, rank) for rank in range(gpus)] == sizes


def test_chunk_rows_match_torch():
    torch = pytest.importorskip("torch")
    for rows in range(1, 20):
        for gpus in range(1, 9):
            chunks = [len(c) for c in torch.arange(rows).chunk(gpus)]
            chunks += [0] * (gpus - len(chunks))
            assert [chunk_rows(rows, gpus, r) for r in range(gpus)] == chunks


SHAPE_SPECS = [
    spec_text({"steps": 7, "features": 5}, "lstm: {hidden: 6, layers: 3, bidirectional: true}"),
    spec_text({"steps": 7, "features": 5}, "gru: {hidden: 6, layers: 2, bias: single}"),
    spec_text({"steps": 7, "features": 5}, "rnn: {hidden: 6, bias: false}"),
    spec_text({"steps": 7}, "embedding: {vocabulary: 11, dim: 4}", "layernorm"),
    spec_text([3, 8, 8], "conv: {filters: 6, kernel: 3, groups: 3}", "batchnorm",
              "convtranspose: {filters: 4, kernel: 2, stride: 2, groups: 2}", "conv: {filters: 2, kernel: 3, bias: false}",
              "flatten", "dense: {units: 3, bias: false}", "dense: 2"),
]


@pytest.mark.parametrize("source", [*SHAPE_SPECS, *sorted(SPECS.glob("*.yaml"))], ids=str)
def test_parameter_shapes_are_pytorchs(source):
    """Each kind's parameter tensors, with their counts, are the module's parameters() shapes."""
    pytest.importorskip("torch")
    from archcalc.backend import build

    analysis = (archcalc.analyze(archcalc.load(str(source))) if not isinstance(source, str)
                else analyze_text(source))
    network = build(analysis, device="meta")
    for stats in analysis.layers:
        static = Counter()
        for shape, count in stats.layer.parameter_shapes(stats.input_shape):
            static[tuple(shape)] += count
        if stats.shares is None:  # a sharing layer's tensors (GPT-2's tied head) are counted at its owner
            assert sum(count * _elements(shape) for shape, count in static.items()) == stats.params
        assert static == Counter(tuple(p.shape) for p in network.submodule(stats.name).parameters()), stats.name


def _elements(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "alexnet", "lenet5", "captioning_vgg16"])
def test_ddp_buckets_are_the_reducers(name):
    """DDP's rebuilt buckets: torch.distributed's own assignment of the gradients in reverse
    order, 1 MiB for the first bucket and 25 MiB after."""
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    from archcalc.backend import build

    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")))
    trained = [p for p in build(analysis, device="meta").parameters() if p.requires_grad]
    order = [torch.empty(p.shape) for p in reversed(trained)]
    buckets, _ = dist._compute_bucket_assignment_by_size(order, [dist._DEFAULT_FIRST_BUCKET_BYTES, 25 * 2 ** 20],
                                                         [False] * len(order))
    runs = ddp_buckets(layout(analysis).trained_shapes, 4)
    assert [size for size, times in runs for _ in range(times)] == [sum(order[i].numel() * 4 for i in b)
                                                                   for b in buckets]


def test_ddp_buckets_of_equal_tensors_as_the_reducer_assigns_them():
    """Found by the adversarial suite: a gru of 2^63-1 layers made `plan` (DDP) loop once per
    tensor, forever. The buckets of many equal tensors are counted a bucket at a time, and equal
    what torch.distributed assigns one tensor at a time (3,000 tensors of 7 KiB; of 30 MiB)."""
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    for shape, count in (((1792,), 3000), ((30 * 2 ** 18,), 3), ((5,), 1)):
        order = [torch.empty(shape) for _ in range(count)]
        buckets, _ = dist._compute_bucket_assignment_by_size(order, [dist._DEFAULT_FIRST_BUCKET_BYTES, 25 * 2 ** 20],
                                                             [False] * len(order))
        runs = ddp_buckets(((shape, count),), 4)
        assert [size for size, times in runs for _ in range(times)] == [len(b) * prod(shape) * 4 for b in buckets]
    many = ddp_buckets((((3 * 3,), 2 * 2 ** 63 - 2), ((9, 27), 2 ** 63 - 1)), 4)  # one moment, no loop per tensor
    assert sum(size * times for size, times in many) == 4 * (9 * (2 * 2 ** 63 - 2) + 243 * (2 ** 63 - 1))


def test_ring_factors_and_the_papers_communication_volume():
    """ZeRO section 7: data parallelism moves 2 Psi per GPU (an all-reduce), ZeRO-1 and -2 the same,
    ZeRO-3 3 Psi (1.5x): here in bytes of 16-bit gradients, times the ring's (N-1)/N."""
    assert ring_factor("all-reduce", 4) == Fraction(3, 2)
    assert ring_factor("all-gather", 4) == ring_factor("reduce-scatter", 4) == Fraction(3, 4)
    analysis = archcalc.analyze(archcalc.load(str(ZERO_SPEC)), batch=64)
    psi = 7_500_000_000
    sent = {s: sharded_memory(analysis, s, 64, mixed_precision="fp16").communication_bytes
            for s in ("ddp", "zero1", "zero2", "fsdp")}
    assert sent["ddp"] == sent["zero1"] == sent["zero2"] == 2 * psi * 2 * 63 // 64
    root = 6400 * 675  # fsdp keeps the root unit (the first dense layer) gathered through backward
    assert sent["fsdp"] == (3 * psi - root) * 2 * 63 // 64


def test_units_follow_blocks_and_repeats():
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "resnet18.yaml")))
    found = units(analysis)
    assert [u.name for u in found.units] == ["basic1", "basic2", "basic_down1", "basic3", "basic_down2", "basic4",
                                             "basic_down3", "basic5"]
    assert found.root.layers == ("conv1", "bn1", "relu1", "pool1", "gap1", "fc")
    assert found.root.params + sum(u.params for u in found.units) == 11_689_512
    named = units(analysis, ("layer1", "fc"))
    assert [u.name for u in named.units] == ["layer1[1]", "layer1[2]", "fc"]
    vgg = units(archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml"))))
    assert [u.name for u in vgg.units][:3] == ["block1[1]", "block1[2]", "block2[1]"]


def test_fsdp_peak_names_what_is_gathered_then():
    """ResNet-18 on 4 GPUs at 1 sample each: the passes peak in the backward of the last blocks,
    with the root (stem and fc) gathered throughout, one block unsharded, the one before it
    prefetched, and the reduce-scatter buffer of the one after it; the per-rank peaks themselves
    are checked against FSDP2 (tests/test_distributed.py)."""
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "resnet18.yaml")), batch=4)
    memory = sharded_memory(analysis, "fsdp", 4)
    assert memory.peak_moment == "forward and backward"
    assert memory.gathered_units[0] == "root" and len(memory.gathered_units) == 4
    found = units(analysis)
    # at most: the root, two blocks whole (unsharded and prefetched) and a third's gradients, 4 bytes each
    most = 4 * (found.root.params + sum(sorted(u.params for u in found.units)[-3:]))
    assert 4 * found.root.params < memory.gathered_bytes <= most


PLAN_32GB = [  # ZeRO Table 1's bold entries: the model states fit a 32 GB V100 at N, not at the N before
    ("zero1", 64, 16), ("zero2", 16, 4), ("fsdp", 4, 1),
]


@pytest.mark.parametrize(("strategy", "fits", "not_at"), PLAN_32GB)
def test_plan_agrees_with_the_papers_32gb_gpus(strategy, fits, not_at):
    """The plan adds activations and the optimizer step's temporaries to the paper's model states,
    so it needs more GPUs than the states alone: never fewer than the paper's table allows."""
    analysis = archcalc.analyze(archcalc.load(str(ZERO_SPEC)))
    states = precision("float32", "adam", "fp16")
    assert sum(model_states(7_500_000_000, strategy, fits, states)) <= 32 * GB
    assert sum(model_states(7_500_000_000, strategy, not_at, states)) > 32 * GB
    (fit,) = plan(analysis, 32 * GB, (1, 1024), mixed_precision="fp16", strategies=(strategy,))
    assert fit.gpus > not_at
    assert fit.gpu_batch >= 1 and fit.memory.total_bytes <= 32 * GB
    before = sharded_memory(analysis, strategy, fit.gpus - 1, batch=fit.gpus - 1, mixed_precision="fp16")
    assert before.total_bytes > 32 * GB


def test_plan_says_why_ddp_does_not_fit():
    analysis = archcalc.analyze(archcalc.load(str(ZERO_SPEC)))
    none, ddp = plan(analysis, 80 * GB, (1, 64), mixed_precision="bf16", strategies=("none", "ddp"))
    assert none.gpus is None and ddp.gpus is None
    assert ddp.too_big == ("optimizer state", 12 * 7_500_000_000)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_inspect_gpus_json():
    result = run("inspect", ZERO_SPEC, "--gpus", 64, "--shard", "fsdp", "--mixed-precision", "fp16", "--batch", 64,
                 "--bandwidth", "400GB/s", "--throughput", "312TFLOPs/s", "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["sharding"]
    assert found["model_state_bytes"] == 1_875_000_000
    assert found["optimizer_bytes_per_parameter"] == 12
    assert found["communication_seconds"] == pytest.approx(found["communication_bytes"] / 400e9)
    assert found["compute_seconds"] == pytest.approx(3 * 15_000_000_000 / 312e12)


def test_cli_plan_table():
    result = run("plan", ZERO_SPEC, "--gpu-memory", "80GB", "--mixed-precision", "bf16")
    assert result.exit_code == 0, result.output
    assert "ddp: one sample per GPU on 64 GPUs needs 165.00 GB" in result.output  # the step: + fp32 sqrt(v)
    assert "the largest term: optimizer state 90.00 GB" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (("plan", ZERO_SPEC, "--gpu-memory", "80"), "needs a unit"),
    (("plan", ZERO_SPEC, "--gpu-memory", "80GB", "--gpus", "8..2"), "not a count or a range"),
    (("inspect", ZERO_SPEC, "--gpus", 2, "--shard", "none"), "--shard none trains on one GPU"),
    (("inspect", ZERO_SPEC, "--gpus", 3, "--batch", 4), "3 GPUs do not divide the batch of 4"),
    (("inspect", SPECS / "resnet18.yaml", "--shard", "fsdp", "--shard-unit", "layer9"), "not a repeat, block"),
    (("inspect", SPECS / "course_grey.yaml", "--gpus", 64, "--batch", 64, "--shard", "fsdp"), "too small to shard"),
    (("inspect", ZERO_SPEC, "--bandwidth", "400"), "needs a unit"),
    (("inspect", ZERO_SPEC, "--throughput", "fast"), "cannot read 'fast' as a rate"),
])
def test_cli_errors(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_batch_hint_names_the_multiples_around_the_batch():
    """Found by the adversarial suite: --gpus 4 at batch 1 hinted 'a batch of 4 or 4'."""
    result = CliRunner().invoke(main, ["inspect", str(SPECS / "lenet5.yaml"), "--gpus", "4"])
    assert result.exit_code == 2
    assert result.stderr == ("error: 4 GPUs do not divide the batch of 1: each GPU needs the same number of samples\n"
                             "  hint: a batch of 4 (or a multiple of it)\n")
    result = CliRunner().invoke(main, ["inspect", str(SPECS / "lenet5.yaml"), "--gpus", "4", "--batch", "10"])
    assert result.stderr.endswith("  hint: a batch of 8 or 12\n")


@pytest.mark.parametrize(("strategy", "paper", "exact"), FIGURE_1)
def test_memory_command_spreads_a_step_over_gpus(strategy, paper, exact):
    """archcalc memory --train --gpus: the per-GPU lines inspect prints, the paper's figure among them."""
    args = [str(ZERO_SPEC), "--train", "--gpus", "64", "--shard", strategy, "--mixed-precision", "fp16", "-b", "64"]
    printed = CliRunner().invoke(main, ["memory", *args, "--no-timeline"])
    assert printed.exit_code == 0, printed.output
    model_states = next(line for line in printed.output.splitlines() if line.startswith("  model states: "))
    assert model_states.startswith(f"  model states: {human_bytes(exact)}")  # the paper's, as the test above reads it
    per_gpu = printed.output[printed.output.index("per GPU, "):]
    inspected = CliRunner().invoke(main, ["inspect", *args]).output
    assert per_gpu.splitlines()[:12] == inspected[inspected.index("per GPU, "):].splitlines()[:12]


@pytest.mark.parametrize("args", [["--gpus", "2"], ["--shard", "fsdp"], ["--bandwidth", "400GB/s"]])
def test_memory_gpus_need_a_training_step(args):
    printed = CliRunner().invoke(main, ["memory", str(SPECS / "lenet5.yaml"), *args])
    assert printed.exit_code == 2 and "does not apply here: it spreads a training step over GPUs; add --train" in printed.output
