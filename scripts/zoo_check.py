"""Same function, not only the same counts: each shipped spec against its reference model.

For every pair below it builds the reference model (freshly initialised: torchvision's, and
transformers' GPT-2, BERT and Llama from config objects at small widths, offline, no weights
downloaded) and the spec's (archcalc.backend.build, the spec's parameters set to the same
widths), copies the reference's state_dict into the spec's model one to one and in the order
forward applies the tensors (parameters and buffers, batchnorm's running statistics included),
each tensor's shape checked, then runs both in eval mode in float32 on one random batch and
reports the largest absolute difference of the outputs, which must stay below 1e-4, and the
same relative to the largest output, which must too: freshly initialised, some networks give
tiny outputs (EfficientNet's halve at each of its sixteen sigmoid gates: about 1e-14), where an
absolute bound alone would pass anything. Where a spec holds at other input sizes, it is
checked at a second, odd size too.

Needs torchvision and transformers, which archcalc does not (not run in CI):

    PYTHONPATH=. python scripts/zoo_check.py [-o benchmarks/results/zoo_check.md] [spec names...]

Exit status 1 when any network disagrees.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

import archcalc
from archcalc.backend import build

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
SECOND_SIZE = 199  # odd: every stride-2 layer rounds down on the way

# spec -> torchvision builder; the classics first, then issue 13's networks
PAIRS = {
    "alexnet_torchvision": "alexnet",
    "vgg16": "vgg16",
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3_small": "mobilenet_v3_small",
    "efficientnet_b0": "efficientnet_b0",
    "shufflenet_v2_x1_0": "shufflenet_v2_x1_0",
    "regnet_y_400mf": "regnet_y_400mf",
    "convnext_tiny": "convnext_tiny",
    "vit_b_16": "vit_b_16",
}
# spec -> (transformers' model, the spec's parameters at a small width, the config's, at those widths)
TRANSFORMERS = {
    "gpt2": ("GPT2LMHeadModel",
             {"T": 24, "vocab": 1000, "positions": 64, "width": 64, "heads": 4, "mlp": 256, "layers": 2},
             {"vocab_size": 1000, "n_positions": 64, "n_embd": 64, "n_head": 4, "n_inner": 256, "n_layer": 2}),
    "bert_base": ("BertModel",
                  {"T": 24, "vocab": 1000, "positions": 64, "width": 64, "heads": 4, "mlp": 128, "layers": 2},
                  {"vocab_size": 1000, "max_position_embeddings": 64, "hidden_size": 64, "num_attention_heads": 4,
                   "intermediate_size": 128, "num_hidden_layers": 2}),
    "tinyllama": ("LlamaForCausalLM",
                  {"T": 24, "vocab": 1000, "width": 64, "mlp": 176, "layers": 2, "heads": 8, "kv_heads": 2},
                  {"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
                   "num_attention_heads": 8, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
                   "tie_word_embeddings": False}),
}
NOT_PAIRED = {
    "inception": "two inception modules as the paper draws them (bias, no batchnorm, a 5x5 branch); "
                 "torchvision's GoogLeNet puts batchnorm after every convolution and a 3x3 in that branch, "
                 "so no torchvision model has this spec's weights",
}


def import_torchvision():
    """torchvision; where its compiled operators cannot load (a CUDA build beside a CPU torch,
    as the package index here serves it) the two operators it registers unconditionally at
    import (nms, qnms) are declared first: the models use neither."""
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [name for name in sys.modules if name.startswith("torchvision")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        import_torchvision.library = library  # kept alive: the definitions live as long as it does
        import torchvision
    return torchvision


def import_transformers():
    """transformers, or None where it is not installed. Its image utilities import torchvision
    (which may fail here, see import_torchvision) through PIL: without PIL, transformers treats
    vision as absent, and the language models need none of it."""
    sys.modules.setdefault("PIL", None)  # type: ignore[arg-type]
    try:
        import transformers
    except ImportError:
        return None
    return transformers


def applied_order(state: dict) -> list:
    """torchvision's tensors in the order its forward applies them. A module's own parameters come
    first in its state_dict, before its children's: ConvNeXt's CNBlock registers ``layer_scale``
    on itself, so it is listed before the block it scales ('features.1.0.layer_scale', then
    'features.1.0.block.0.weight', ...); the spec, like forward, scales after the block."""
    items = list(state.items())
    scales = {name.removesuffix("layer_scale"): (name, tensor) for name, tensor in items if name.endswith(".layer_scale")}
    ordered = []
    for index, (name, tensor) in enumerate(items):
        if name in {scale for scale, _ in scales.values()}:
            continue
        ordered.append((name, tensor))
        prefix = next((p for p in scales if name.startswith(p + "block.")), None)
        following = items[index + 1][0] if index + 1 < len(items) else ""
        if prefix is not None and not following.startswith(prefix + "block."):
            ordered.append(scales[prefix])  # after the block's last tensor
    return ordered


LLAMA_LAYER = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")


def transformers_order(model: torch.nn.Module) -> list:
    """A transformers model's tensors in the order its forward applies them, as the spec's layers
    do. Llama registers a layer's norms after its attention and MLP, so each layer's tensors are
    put in the order input_layernorm, self_attn, post_attention_layernorm, mlp. GPT-2's
    projections are Conv1D, whose weight is nn.Linear's transposed ([in, out]): transposed back."""
    conv1d = {name for name, module in model.named_modules() if type(module).__name__ == "Conv1D"}
    items = [(name, tensor.t() if name.removesuffix(".weight") in conv1d else tensor)
             for name, tensor in model.state_dict().items()]
    keys, first = [], {}
    for index, (name, _) in enumerate(items):
        parts = name.split(".")
        at = next((i for i, part in enumerate(parts[:-2]) if part == "layers" and parts[i + 2] in LLAMA_LAYER), None)
        if at is None:
            keys.append((index, 0))
        else:  # sorted within its layer (stable: a part's own tensors keep their order)
            keys.append((first.setdefault(".".join(parts[:at + 2]), index), LLAMA_LAYER.index(parts[at + 2])))
    return [item for _, item in sorted(zip(keys, items), key=lambda pair: pair[0])]


def copy_weights(theirs: list, target: torch.nn.Module) -> int:
    """The reference's tensors ((name, tensor) in the order forward applies them) into the spec's
    model, one to one; a ValueError naming both tensors where the count or a shape differs.
    torchvision keeps ViT's class token and position embedding with a batch axis of 1 ([1, 197,
    768]) where the spec's parameter has none: that axis alone may differ. Returns the tensors copied."""
    ours = list(target.state_dict().items())
    if len(theirs) != len(ours):
        raise ValueError(f"the reference has {len(theirs)} tensors, the spec's model {len(ours)}")
    with torch.no_grad():
        for (their_name, their), (our_name, mine) in zip(theirs, ours):
            if their.shape != mine.shape and their.shape != (1, *mine.shape):
                raise ValueError(f"{their_name} {tuple(their.shape)} has no counterpart: {our_name} is "
                                 f"{tuple(mine.shape)}")
            mine.copy_(their.reshape(mine.shape))
    return len(ours)


def check(torchvision, spec_name: str, builder: str, size: int, seed: int = 0) -> dict:
    """One spec at one input size against torchvision: counts, the copy, the outputs' largest difference."""
    torch.manual_seed(seed)
    reference = getattr(torchvision.models, builder)().eval()
    with torch.no_grad():  # torchvision zero-initialises ViT's head: every output would be 0, whatever came before
        for parameter in reference.parameters():
            if parameter.dim() > 1 and not parameter.any():
                parameter.normal_(std=0.02)
    spec = archcalc.load(str(ROOT / "specs" / f"{spec_name}.yaml"))
    analysis = archcalc.analyze(spec, input_shape=(3, size, size))
    model = build(analysis).eval()
    tensors = copy_weights(applied_order(reference.state_dict()), model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    return compared(spec_name, f"torchvision {builder}", str(size), tensors, analysis, reference, [expected], [actual])


def check_transformers(transformers, spec_name: str, seed: int = 0) -> dict:
    """One spec at a small width against transformers' model built from a config at that width:
    counts, the copy, the outputs' largest difference (GPT-2 and Llama: the logits; BERT: the
    last hidden state and the pooler's output), on random token ids (and token types)."""
    model_name, params, config = TRANSFORMERS[spec_name]
    torch.manual_seed(seed)
    model_class = getattr(transformers, model_name)
    reference = model_class(model_class.config_class(**config)).eval()
    analysis = archcalc.analyze(archcalc.load(str(ROOT / "specs" / f"{spec_name}.yaml"), params))
    model = build(analysis).eval()
    tensors = copy_weights(transformers_order(reference), model)
    ids = torch.randint(0, params["vocab"], (2, params["T"]))
    with torch.no_grad():
        if spec_name == "bert_base":
            types = torch.randint(0, 2, (2, params["T"]))
            out = reference(input_ids=ids, token_type_ids=types)
            expected, actual = [out.last_hidden_state, out.pooler_output], list(model(ids, types))
        else:
            expected, actual = [reference(input_ids=ids).logits], [model(ids)]
    widths = ", ".join(f"{key} {value}" for key, value in params.items())
    return compared(spec_name, f"transformers {model_name}", widths, tensors, analysis, reference, expected, actual)


def compared(spec_name: str, reference_name: str, size: str, tensors: int, analysis, reference,
             expected: list, actual: list) -> dict:
    """The row of one pair: counts, the largest difference of the outputs and the largest output."""
    return {"spec": spec_name, "reference": reference_name, "size": size, "tensors": tensors,
            "params": analysis.totals.params,
            "reference_params": sum(p.numel() for p in reference.parameters()),
            "difference": max((e - a).abs().max().item() for e, a in zip(expected, actual)),
            "scale": max(e.abs().max().item() for e in expected)}


def agrees(result: dict) -> bool:
    """Same parameters, outputs not all 0, and within TOLERANCE absolutely and relative to the largest."""
    return (result["params"] == result["reference_params"] and result["scale"] > 0 and result["difference"] < TOLERANCE
            and result["difference"] <= TOLERANCE * result["scale"])


def holds_at(spec_name: str, size: int) -> bool:
    """Whether the spec analyzes at ``size`` with the parameters it has at 224 (a spec whose
    dense layer reads a fixed 7x7 map does not)."""
    spec = archcalc.load(str(ROOT / "specs" / f"{spec_name}.yaml"))
    try:
        return archcalc.analyze(spec, input_shape=(3, size, size)).totals.params == archcalc.analyze(spec).totals.params
    except archcalc.SpecError:
        return False


def markdown(results: list, failures: list, torchvision, transformers) -> str:
    versions = f"torchvision {torchvision.__version__}" + (f", transformers {transformers.__version__}"
                                                           if transformers else ", transformers not installed")
    lines = ["# Zoo check: the specs compute what the reference models compute", "",
             f"`scripts/zoo_check.py`: torch {torch.__version__}, {versions}, "
             f"{platform.machine()} CPU, float32, eval mode, batch 2, seed 0. Each spec's model receives "
             f"the reference's freshly initialised state_dict one to one, in the order forward applies it, every "
             f"shape checked (transformers' models built from config objects at the widths shown, the spec's "
             f"parameters set to them; a weight matrix the reference initialises to 0, ViT's head, is drawn at "
             f"random first); 'difference' is the largest absolute difference of the outputs (the "
             f"1000 class scores; the logits; BERT's last hidden state and pooler output), 'scale' the largest "
             f"output, 'relative' their ratio (each must stay below {TOLERANCE:g}).", "",
             "| spec | reference | input | tensors copied | params (spec = reference) | difference | scale "
             "| relative | |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        same = "=" if r["params"] == r["reference_params"] else f"!= {r['reference_params']:,}"
        lines.append(f"| {r['spec']} | {r['reference']} | {r['size']} | {r['tensors']} | {r['params']:,} {same} "
                     f"| {r['difference']:.2e} | {r['scale']:.2e} | {r['difference'] / (r['scale'] or float('nan')):.2e} "
                     f"| {'ok' if agrees(r) else 'FAILS'} |")
    for spec_name, builder, size, message in failures:
        lines.append(f"| {spec_name} | {builder} | {size} | | | | | | FAILS: {message} |")
    lines += ["", "Not paired:", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in NOT_PAIRED.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help="spec names (default: all paired)")
    parser.add_argument("-o", "--output", help="write the markdown table here")
    options = parser.parse_args()
    torchvision, transformers = import_torchvision(), import_transformers()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results, failures = [], []
    for spec_name in options.specs or [*PAIRS, *TRANSFORMERS]:
        if spec_name in TRANSFORMERS:
            if transformers is None:
                failures.append((spec_name, TRANSFORMERS[spec_name][0], "", "transformers is not installed"))
                continue
            runs = [(TRANSFORMERS[spec_name][0], "", lambda name=spec_name: check_transformers(transformers, name))]
        else:
            builder = PAIRS[spec_name]
            sizes = [224] + ([SECOND_SIZE] if holds_at(spec_name, SECOND_SIZE) else [])
            runs = [(builder, size, lambda name=spec_name, b=builder, s=size: check(torchvision, name, b, s))
                    for size in sizes]
        for builder, size, run in runs:
            start = time.perf_counter()
            try:
                result = run()
            except (ValueError, archcalc.SpecError) as exc:
                failures.append((spec_name, builder, size, str(exc)))
                print(f"{spec_name} {size}: FAILS: {exc}", file=sys.stderr)
                continue
            results.append(result)
            print(f"{spec_name} {result['size']}: {result['tensors']} tensors, difference {result['difference']:.2e} "
                  f"of {result['scale']:.2e} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    text = markdown(results, failures, torchvision, transformers)
    if options.output:
        Path(options.output).write_text(text)
    else:
        print(text, end="")
    bad = failures or [r for r in results if not agrees(r)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
