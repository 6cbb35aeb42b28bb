"""Training memory (the stated model of archcalc/analysis/memory.py) and the largest batch that fits."""
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS, spec_text

import archcalc
from archcalc.analysis.memory import inference_max_batch, max_batch, training_memory
from archcalc.cli import main

TINY = spec_text((10,), "dense: 5")  # 55 params; input 10 + output 5 values per sample


def tiny(**options):
    return archcalc.analyze(archcalc.loads(TINY), **options)


@pytest.mark.parametrize("optimizer,state", [("sgd", 0), ("momentum", 220), ("adam", 440), ("adamw", 440)])
def test_each_component_float32(optimizer, state):
    memory = training_memory(tiny(batch=4), optimizer)
    assert (memory.weight_bytes, memory.gradient_bytes, memory.optimizer_bytes) == (220, 220, state)
    assert memory.activation_bytes == (10 + 5) * 4 * 4          # input + output, float32, batch 4
    assert (memory.largest_layer, memory.largest_layer_bytes) == ("fc1", 5 * 4 * 4)
    assert memory.total_bytes == 220 + 220 + state + 240 + 80


def test_mixed_precision_keeps_fp32_master_weights_and_halves_activations():
    memory = training_memory(tiny(batch=4), "adam", "bf16")
    assert memory.weight_bytes == 55 * 4 + 55 * 2               # fp32 master + bf16 copy
    assert (memory.gradient_bytes, memory.optimizer_bytes) == (55 * 4, 2 * 55 * 4)
    assert memory.activation_bytes == 15 * 2 * 4 and memory.largest_layer_bytes == 5 * 2 * 4


def test_mixed_precision_needs_float32():
    with pytest.raises(archcalc.SpecError, match="float32 master weights"):
        training_memory(tiny(dtype="float16"), "adam", "fp16")


def test_frozen_layers_have_no_gradients_or_optimizer_state():
    analysis = archcalc.analyze(archcalc.loads(spec_text((10,), "dense: {units: 5, trainable: false}", "dense: 2")))
    memory = training_memory(analysis, "momentum")
    assert memory.weight_bytes == (55 + 12) * 4
    assert memory.gradient_bytes == memory.optimizer_bytes == 12 * 4


def test_rule_of_thumb_is_shown_beside_the_detail():
    """The course (VGG16, slide 192): forward ~613.8 MB; training roughly twice that."""
    memory = training_memory(archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml"))), "sgd")
    assert memory.rule_of_thumb_bytes == 2 * 613_778_496
    # weights + gradients alone are already ~1.1 GB: the x2 is the weights' gradient, not the activations'
    assert memory.weight_bytes + memory.gradient_bytes == 2 * 553_430_176


@pytest.mark.parametrize("optimizer,mixed", [("adam", None), ("sgd", None), ("adamw", "fp16")])
def test_max_batch_is_the_largest_that_fits(optimizer, mixed):
    spec = archcalc.load(str(SPECS / "vgg16.yaml"))
    budget = 24 * 10**9
    found = max_batch(archcalc.analyze(spec), budget, optimizer, mixed)

    def training_total(batch):
        return training_memory(archcalc.analyze(spec, batch=batch), optimizer, mixed).total_bytes

    assert training_total(found.training) <= budget < training_total(found.training + 1)

    def inference_total(batch):
        analysis = archcalc.analyze(spec, batch=batch, dtype="float16" if mixed else "float32")
        weights = 138_357_544 * 4                                            # float32 either way
        return weights + analysis.totals.activation_bytes + 3 * 224 * 224 * (2 if mixed else 4) * batch

    assert inference_total(found.inference) <= budget < inference_total(found.inference + 1)
    assert found.inference > found.training > 0


def test_max_batch_is_zero_when_the_weights_do_not_fit():
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml")))
    assert inference_max_batch(analysis, 500 * 10**6) == 0      # 553 MB of weights
    assert training_memory(analysis).max_batch(2 * 10**9) == 0  # 2.2 GB with adam


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_train_and_max_batch():
    result = run("inspect", SPECS / "vgg16.yaml", "--train", "--optimizer", "momentum", "--max-batch", "24GB", "-b", "8")
    assert result.exit_code == 0
    for text in ("training memory (momentum, float32, batch 8)", "gradients", "optimizer state",
                 "activations kept", "largest layer: conv1", "rule of thumb", "archcalc memory",
                 "largest batch in 24.00 GB"):
        assert text in result.output, text
    data = json.loads(run("inspect", SPECS / "vgg16.yaml", "--train", "--max-batch", "16GiB", "-f", "json").output)
    assert data["training"]["optimizer"] == "adam"
    assert data["training"]["total_bytes"] == (data["training"]["fixed_bytes"]
                                               + data["batch"] * data["training"]["per_sample_bytes"])
    assert data["max_batch"]["budget_bytes"] == 16 * 2**30
    assert "training" in data["conventions"]


@pytest.mark.parametrize("args,message", [
    (["--max-batch", "lots"], "cannot read 'lots' as a size"),
    (["--train", "--mixed-precision", "fp16", "--dtype", "float16"], "leave --dtype at float32"),
])
def test_cli_errors(args, message):
    result = run("inspect", SPECS / "alexnet.yaml", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
