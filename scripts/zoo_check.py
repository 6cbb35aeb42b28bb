"""Same function, not only the same counts: each shipped spec against torchvision's model.

For every pair below it builds torchvision's model (freshly initialised) and the spec's
(archcalc.backend.build), copies torchvision's state_dict into the spec's model one to one and
in order (parameters and buffers, batchnorm's running statistics included), each tensor's
shape checked, then runs both in eval mode in float32 on one random batch and reports the
largest absolute difference of the outputs, which must stay below 1e-4, and the same relative to
the largest output, which must too: freshly initialised, some networks give tiny outputs
(EfficientNet's halve at each of its sixteen sigmoid gates: about 1e-14), where an absolute
bound alone would pass anything. Where a spec holds at other input sizes, it is checked at a
second, odd size too.

Needs torchvision, which archcalc does not (not run in CI):

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


def copy_weights(source: torch.nn.Module, target: torch.nn.Module) -> int:
    """torchvision's state_dict into the spec's model, tensor by tensor in the order forward
    applies them (``applied_order``); a ValueError naming both tensors where the count or a
    shape differs. Returns the tensors copied."""
    theirs, ours = applied_order(source.state_dict()), list(target.state_dict().items())
    if len(theirs) != len(ours):
        raise ValueError(f"torchvision has {len(theirs)} tensors, the spec's model {len(ours)}")
    with torch.no_grad():
        for (their_name, their), (our_name, mine) in zip(theirs, ours):
            if their.shape != mine.shape:
                raise ValueError(f"{their_name} {tuple(their.shape)} has no counterpart: {our_name} is "
                                 f"{tuple(mine.shape)}")
            mine.copy_(their)
    return len(ours)


def check(torchvision, spec_name: str, builder: str, size: int, seed: int = 0) -> dict:
    """One spec at one input size: counts, the copy, and the outputs' largest difference."""
    torch.manual_seed(seed)
    reference = getattr(torchvision.models, builder)().eval()
    spec = archcalc.load(str(ROOT / "specs" / f"{spec_name}.yaml"))
    analysis = archcalc.analyze(spec, input_shape=(3, size, size))
    model = build(analysis).eval()
    tensors = copy_weights(reference, model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    return {"spec": spec_name, "torchvision": builder, "size": size, "tensors": tensors,
            "params": analysis.totals.params,
            "torchvision_params": sum(p.numel() for p in reference.parameters()),
            "difference": (expected - actual).abs().max().item(),
            "scale": expected.abs().max().item()}


def agrees(result: dict) -> bool:
    """Same parameters, and outputs within TOLERANCE absolutely and relative to the largest."""
    return (result["params"] == result["torchvision_params"] and result["difference"] < TOLERANCE
            and result["difference"] <= TOLERANCE * result["scale"])


def holds_at(spec_name: str, size: int) -> bool:
    """Whether the spec analyzes at ``size`` with the parameters it has at 224 (a spec whose
    dense layer reads a fixed 7x7 map does not)."""
    spec = archcalc.load(str(ROOT / "specs" / f"{spec_name}.yaml"))
    try:
        return archcalc.analyze(spec, input_shape=(3, size, size)).totals.params == archcalc.analyze(spec).totals.params
    except archcalc.SpecError:
        return False


def markdown(results: list, failures: list, torchvision) -> str:
    lines = ["# Zoo check: the specs compute what torchvision's models compute", "",
             f"`scripts/zoo_check.py`: torch {torch.__version__}, torchvision {torchvision.__version__}, "
             f"{platform.machine()} CPU, float32, eval mode, batch 2, seed 0. Each spec's model receives "
             f"torchvision's freshly initialised state_dict one to one, in order, every shape checked; "
             f"'difference' is the largest absolute difference of the 1000 outputs, 'scale' the largest "
             f"output, 'relative' their ratio (each must stay below {TOLERANCE:g}).", "",
             "| spec | torchvision | input | tensors copied | params (spec = torchvision) | difference | scale "
             "| relative | |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        same = "=" if r["params"] == r["torchvision_params"] else f"!= {r['torchvision_params']:,}"
        lines.append(f"| {r['spec']} | {r['torchvision']} | {r['size']} | {r['tensors']} | {r['params']:,} {same} "
                     f"| {r['difference']:.2e} | {r['scale']:.2e} | {r['difference'] / r['scale']:.2e} "
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
    torchvision = import_torchvision()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results, failures = [], []
    for spec_name in options.specs or PAIRS:
        builder = PAIRS[spec_name]
        sizes = [224] + ([SECOND_SIZE] if holds_at(spec_name, SECOND_SIZE) else [])
        for size in sizes:
            start = time.perf_counter()
            try:
                result = check(torchvision, spec_name, builder, size)
            except (ValueError, archcalc.SpecError) as exc:
                failures.append((spec_name, builder, size, str(exc)))
                print(f"{spec_name} at {size}: FAILS: {exc}", file=sys.stderr)
                continue
            results.append(result)
            print(f"{spec_name} at {size}: {result['tensors']} tensors, difference {result['difference']:.2e} "
                  f"of {result['scale']:.2e} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    text = markdown(results, failures, torchvision)
    if options.output:
        Path(options.output).write_text(text)
    else:
        print(text, end="")
    bad = failures or [r for r in results if not agrees(r)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
