"""inspect --train, --max-batch and the JSON: the memory schedule (analysis/schedule.py), the one
model of training memory, at CUDA's kernels; the largest batch that fits."""
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS, spec_text

import archcalc
from archcalc.analysis.schedule import max_batch, schedule
from archcalc.cli import main

TINY = spec_text((10,), "dense: 5")  # 55 params; input 10 + output 5 values per sample


def tiny(**options):
    return archcalc.analyze(archcalc.loads(TINY), **options)


def step_parts(analysis, optimizer, **options) -> dict:
    """What is live at the optimizer step's start (weights, gradients, state; the batch)."""
    replay = schedule(analysis, training=True, optimizer=optimizer, **options)
    return next(m for m in replay.moments if m.phase == "step").parts(analysis.batch)


@pytest.mark.parametrize("optimizer,state", [("sgd", 0), ("momentum", 220), ("adam", 440), ("adamw", 440)])
def test_model_states_float32(optimizer, state):
    """nn.Linear(10, 5): 55 float32 numbers each of weights and gradients, 0/1/2 states per weight
    (torch.optim's buffers); CUDA keeps Adam's step counters on the host."""
    parts = step_parts(tiny(batch=4), optimizer, device="cuda")
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == (220, 220, state)
    assert parts["input"] == 4 * 10 * 4


def test_mixed_precision_keeps_float32_master_weights_gradients_and_state():
    """torch.autocast: the parameters, their .grad and Adam's moments stay float32."""
    parts = step_parts(tiny(batch=4), "adam", device="cuda", mixed_precision="bf16")
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == (220, 220, 440)


def test_mixed_precision_needs_float32():
    with pytest.raises(archcalc.SpecError, match="float32 master weights"):
        schedule(tiny(dtype="float16"), training=True, mixed_precision="fp16")


def test_frozen_layers_have_no_gradients_or_optimizer_state():
    analysis = archcalc.analyze(archcalc.loads(spec_text((10,), "dense: {units: 5, trainable: false}", "dense: 2")))
    parts = step_parts(analysis, "momentum", device="cuda")
    assert parts["weights"] == (55 + 12) * 4
    assert parts["gradients"] == parts["optimizer"] == 12 * 4


def test_rule_of_thumb_stays_the_courses():
    """The course (VGG16, slide 192): forward ~613.8 MB; training roughly twice that."""
    result = run("inspect", SPECS / "vgg16.yaml", "--train", "-f", "json")
    assert json.loads(result.output)["training"]["rule_of_thumb_bytes"] == 2 * 613_778_496


@pytest.mark.parametrize("name,budget,optimizer,mixed,checkpoint", [
    ("lenet5", 30 * 10**6, "adam", None, ()), ("lenet5", 30 * 10**6, "sgd", None, ()),
    ("lenet5", 30 * 10**6, "adamw", "fp16", ()),
    ("lenet5", 30 * 10**6, "sgd", None, (("conv1", "pool1"), ("fc1", "fc2"))),
    ("lenet5", 30 * 10**6, "adam", "bf16", (("conv2", "pool2"),)),
    # a recurrent net: the lines of a replay at batch 1 give 1,997 (PyTorch copies its input into
    # time-major order, and the dense layer its strided output, only for more than one sample);
    # the replay at the answer decides
    ("min_char_rnn", 10**8, "adam", None, ()),
    ("min_char_rnn", 10**8, "sgd", None, (("Wxh_Whh_bh",),)),
])
def test_max_batch_is_the_largest_that_fits(name, budget, optimizer, mixed, checkpoint):
    """The schedule replayed at the answer fits, one more sample does not (with the checkpointed
    segments, the checkpointed step's schedule)."""
    spec = archcalc.load(str(SPECS / f"{name}.yaml"))
    found = max_batch(archcalc.analyze(spec), budget, optimizer, mixed, checkpoint=checkpoint)

    def peak(batch, training, segments=()):
        return schedule(archcalc.analyze(spec, batch=batch), training=training, optimizer=optimizer, device="cuda",
                        mixed_precision=mixed, checkpoint=segments).peak()

    answers = [(found.training, True, ()), (found.inference, False, ())]
    if checkpoint:
        answers.append((found.checkpointed, True, checkpoint))
    for largest, training, segments in answers:
        assert peak(largest, training, segments) <= budget < peak(largest + 1, training, segments), (largest, training)
    assert found.inference > found.training > 0
    assert (found.checkpointed is not None) == bool(checkpoint)


def test_max_batch_is_zero_when_the_weights_do_not_fit():
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml")))
    found = max_batch(analysis, 500 * 10**6)                    # 553 MB of weights
    assert found.inference == found.training == 0
    assert max_batch(analysis, 2 * 10**9).training == 0         # 2.2 GB of weights, gradients, Adam's state


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_train_and_max_batch():
    result = run("inspect", SPECS / "vgg16.yaml", "--train", "--optimizer", "momentum", "--max-batch", "24GB", "-b", "8")
    assert result.exit_code == 0
    for text in ("training memory (momentum, float32, batch 8, cuda kernels)", "training step (momentum): peak",
                 "gradients", "optimizer state", "activations (kept for backward", "peak per phase: forward",
                 "course's rule, training (x2)", "largest batch in 24.00 GB"):
        assert text in result.output, text
    assert "a sum, not a schedule" not in result.output
    data = json.loads(run("inspect", SPECS / "vgg16.yaml", "--train", "--max-batch", "16GiB", "-f", "json").output)
    training = data["training"]
    assert training["optimizer"] == "adam" and training["device"] == "cuda"
    assert training["peak_bytes"] == training["fixed_bytes"] + data["batch"] * training["per_sample_bytes"]
    assert training["peak_bytes"] == sum(training[key] for key in (
        "weight_bytes", "gradient_bytes", "optimizer_bytes", "input_bytes", "activation_bytes", "transient_bytes"))
    assert training["peak_bytes"] == max(training["phase_peaks"].values())
    assert data["max_batch"]["budget_bytes"] == 16 * 2**30
    assert "training" in data["conventions"]


def test_cli_max_batch_honours_checkpoint():
    """inspect --max-batch --checkpoint (no --train needed): the checkpointed step's largest batch
    beside the plain one, in the text and the JSON; memory --max-batch gives the same."""
    path = SPECS / "unet_small.yaml"
    args = ("--max-batch", "8GB", "--optimizer", "sgd", "--checkpoint", "every:4")
    analysis = archcalc.analyze(archcalc.load(str(path)))
    from archcalc.analysis.checkpoint import segments
    layers = tuple(segment.layers for segment in segments(analysis, ["every:4"]))
    expected = max_batch(analysis, 8 * 10**9, "sgd", checkpoint=layers)
    assert expected.checkpointed > expected.training > 0
    result = run("inspect", path, *args)
    assert result.exit_code == 0, result.output
    assert (f"largest batch in 8.00 GB (7.45 GiB): inference {expected.inference:,}, training {expected.training:,}, "
            f"{expected.checkpointed:,} with {len(layers)} segments checkpointed (sgd, cuda kernels)") in result.output
    data = json.loads(run("inspect", path, *args, "-f", "json").output)["max_batch"]
    assert (data["training"], data["training_checkpointed"]) == (expected.training, expected.checkpointed)
    memory = run("memory", path, "--train", *args, "--no-timeline").output
    assert f"training {expected.training:,}, training checkpointed {expected.checkpointed:,}" in memory
    refused = run("inspect", path, "--checkpoint", "layer1")
    assert refused.exit_code == 2 and "add one of them" in refused.output and "Traceback" not in refused.output


@pytest.mark.parametrize("name,strategy,gpus,mixed", [
    ("alexnet", "ddp", 4, None), ("alexnet", "fsdp", 8, None), ("unet_small", "zero2", 8, "bf16"),
    ("min_char_rnn", "fsdp", 2, None),
    ("min_char_rnn", "none", 1, None),   # the lines of one sample say 40,074: copies start at two samples
])
def test_max_batch_on_several_gpus_is_the_largest_whose_per_gpu_peak_fits(name, strategy, gpus, mixed):
    """--max-batch with --gpus: the global batch (a multiple of the GPUs) whose per-GPU peak, as
    sharded_memory computes it at that batch, fits; one more sample per GPU does not."""
    from archcalc.analysis.sharding import max_global_batch, sharded_memory
    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")), batch=gpus)
    budget = 2 * 10**9
    found = max_global_batch(analysis, budget, strategy, gpus, mixed_precision=mixed)
    assert found % gpus == 0 and found > 0

    def peak(batch):
        return sharded_memory(analysis.at_batch(batch), strategy, gpus, mixed_precision=mixed).total_bytes
    assert peak(found) <= budget < peak(found + gpus)


@pytest.mark.parametrize("name", ["lenet5", "min_char_rnn"])
def test_plan_batch_per_gpu_is_the_largest_that_fits(name):
    """archcalc plan's batch per GPU, at the fewest GPUs and at the most: the per-GPU peak at that
    batch fits, one more sample per GPU does not (the same search as --max-batch with --gpus)."""
    from archcalc.analysis.sharding import plan, sharded_memory
    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")))
    budget = 2 * 10**9

    def peak(strategy, gpus, gpu_batch):
        return sharded_memory(analysis.at_batch(gpus * gpu_batch), strategy, gpus).total_bytes
    for fit in plan(analysis, budget, (1, 4)):
        assert fit.gpus is not None, fit.strategy
        at_fewest = (peak(fit.strategy, fit.gpus, fit.gpu_batch), peak(fit.strategy, fit.gpus, fit.gpu_batch + 1))
        assert fit.memory.total_bytes == at_fewest[0] <= budget < at_fewest[1]
        assert peak(fit.strategy, fit.top_gpus, fit.largest_gpu_batch) <= budget \
            < peak(fit.strategy, fit.top_gpus, fit.largest_gpu_batch + 1)


def test_cli_max_batch_on_several_gpus():
    path = SPECS / "alexnet.yaml"
    from archcalc.analysis.sharding import max_global_batch
    found = max_global_batch(archcalc.analyze(archcalc.load(str(path)), batch=8), 24 * 10**9, "fsdp", 8)
    text = run("inspect", path, "--max-batch", "24GB", "--gpus", "8", "--shard", "fsdp", "-b", "8").output
    assert f"largest batch in 24.00 GB (22.35 GiB) per GPU, fsdp on 8 GPUs: {found:,} ({found // 8:,} per GPU)" in text
    data = json.loads(run("inspect", path, "--max-batch", "24GB", "--gpus", "8", "--shard", "fsdp", "-b", "8",
                          "-f", "json").output)["max_batch"]["sharded"]
    assert data == {"shard": "fsdp", "gpus": 8, "batch": found, "gpu_batch": found // 8}
    memory = run("memory", path, "--train", "--max-batch", "24GB", "--gpus", "8", "--shard", "fsdp", "-b", "8",
                 "--no-timeline").output
    assert f"per GPU, fsdp on 8 GPUs: {found:,} ({found // 8:,} per GPU)" in memory


@pytest.mark.parametrize("args,message", [
    (["--max-batch", "lots"], "cannot read 'lots' as a size"),
    (["--train", "--mixed-precision", "fp16", "--dtype", "float16"], "leave --dtype at float32"),
])
def test_cli_errors(args, message):
    result = run("inspect", SPECS / "alexnet.yaml", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
