#!/usr/bin/env python3
"""Every shipped spec through the PyTorch backend on CUDA, and the compiled VGG16 against a
hand-written one. One prepared run; writes a markdown and a JSON report naming the card.

    python scripts/gpu_check.py                    # -> benchmarks/results/gpu_check.{md,json}

Per spec: the layer-by-layer verification (shapes, parameter counts), forward and forward +
backward throughput, and the peak memory (torch.cuda.max_memory_allocated) next to the
analyzer's prediction. Then VGG16 compiled by archcalc against a plain nn.Sequential VGG16 of
the same layers, same batch, dtype and memory format, timed in alternating rounds (the
throughput ratio should be 1.0 within noise) after checking that both compute the same outputs.

Without CUDA it runs on the CPU (small batch, few iterations), says that no GPU was found and
writes gpu_check_cpu.{md,json}, so a CPU run never overwrites GPU results.
Exit code 1 if any spec disagrees with PyTorch or fails to run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archcalc  # noqa: E402  (the checkout's archcalc, installed or not)
from archcalc.backend import build, verify  # noqa: E402
from archcalc.backend.verification import measure  # noqa: E402
from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.fileio import write_text  # noqa: E402
from archcalc.units import human_bytes  # noqa: E402

VGG16_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def plain_vgg16() -> nn.Module:
    """VGG16 as one would write it by hand (configuration D, as specs/vgg16.yaml)."""
    layers, channels = [], 3
    for item in VGG16_LAYERS:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 1000))  # the class scores, as specs/vgg16.yaml ends (torchvision's)


def check_spec(path: Path, options) -> dict:
    row = {"spec": path.name}
    try:
        analysis = archcalc.analyze(archcalc.load(str(path)), batch=options.batch, dtype=options.dtype)
        result = verify(analysis, device=options.device, train=True, iterations=options.iterations,
                        warmup=options.warmup)
    except (ArchcalcError, RuntimeError) as exc:
        return {**row, "ok": False, "error": str(exc).strip().splitlines()[0]}
    row.update(ok=result.ok, layers=len(result.checks), params=result.actual_params,
               disagreements=result.disagreements, notes=list(result.notes))
    for timing in result.timings:
        row[timing.mode] = {"samples_per_second": timing.samples_per_second, "ms_per_batch": timing.milliseconds,
                            "peak_bytes": timing.peak_bytes, "predicted_bytes": timing.predicted_bytes,
                            "memory_ratio": timing.memory_ratio}
    return row


def compare_vgg16(options) -> dict:
    """Same outputs first (parameters copied across), then alternating timed rounds."""
    dtype = getattr(torch, options.dtype)
    device = torch.device(options.device)
    torch.manual_seed(0)
    compiled = build(archcalc.load(str(ROOT / "specs" / "vgg16.yaml")), device=device, dtype=dtype)
    plain = plain_vgg16().to(device, dtype)
    pairs = list(zip(compiled.parameters(), plain.parameters()))
    assert len(pairs) == 32 and all(a.shape == b.shape for a, b in pairs), "not the same layers"
    with torch.no_grad():
        for mine, theirs in pairs:
            theirs.copy_(mine)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    for model in (compiled, plain):
        model.to(memory_format=memory_format).eval()
    x = torch.randn(options.vgg_batch, 3, 224, 224, device=device, dtype=dtype).contiguous(memory_format=memory_format)
    with torch.no_grad():
        difference = (compiled(x[:2]).float() - plain(x[:2]).float()).abs().max().item()
    rates = {(name, mode): [] for name in ("archcalc", "plain") for mode in ("forward", "train")}
    for _ in range(options.rounds):
        for mode in ("forward", "train"):
            for name, model in (("archcalc", compiled), ("plain", plain)):
                timing = measure(model, (x,), mode=mode, iterations=options.iterations, warmup=options.warmup)
                rates[name, mode].append(timing.samples_per_second)
    median = {key: statistics.median(values) for key, values in rates.items()}
    return {"batch": options.vgg_batch, "dtype": options.dtype, "memory_format": str(memory_format).split(".")[-1],
            "rounds": options.rounds, "iterations": options.iterations, "max_output_difference": difference,
            "params": sum(p.numel() for p in plain.parameters()),
            "samples_per_second": {f"{name} {mode}": value for (name, mode), value in median.items()},
            "ratio": {mode: median["archcalc", mode] / median["plain", mode] for mode in ("forward", "train")}}


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# GPU check: {env['device_name']}", ""]
    if not env["cuda"]:
        lines += ["**No GPU found: this run used the CPU** (small batch, few iterations; no memory "
                  "measurement).", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()] + [""]
    lines += ["## Every shipped spec", "",
              f"batch {report['batch']}, {report['dtype']}, {report['iterations']} timed runs after "
              f"{report['warmup']} warm-up; memory: measured peak / predicted by the memory schedule "
              f"(`archcalc memory --device cuda`; train: forward + backward, no optimizer step)", "",
              "| spec | layers | params | PyTorch agrees | forward samples/s | train samples/s | "
              "forward peak / predicted | train peak / predicted |",
              "|---|---:|---:|:---:|---:|---:|---:|---:|"]
    for row in report["specs"]:
        if "error" in row:
            lines.append(f"| {row['spec']} | | | error: {row['error']} | | | | |")
            continue
        cells = [row["spec"], str(row["layers"]), f"{row['params']:,}", "yes" if row["ok"] else "**NO**"]
        for mode in ("forward", "train"):
            timing = row.get(mode)
            cells.append(f"{timing['samples_per_second']:,.1f}" if timing else "-")
        for mode in ("forward", "train"):
            timing = row.get(mode)
            cells.append(_memory(timing) if timing and timing["peak_bytes"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    vgg = report["vgg16"]
    lines += ["", "## VGG16: compiled by archcalc vs hand-written PyTorch", "",
              f"batch {vgg['batch']}, {vgg['dtype']}, {vgg['memory_format']}, median of {vgg['rounds']} "
              f"alternating rounds of {vgg['iterations']} runs; {vgg['params']:,} parameters each; largest "
              f"output difference with the same weights: {vgg['max_output_difference']:.2e}", "",
              "| | forward samples/s | train samples/s |", "|---|---:|---:|"]
    rates = vgg["samples_per_second"]
    for name in ("archcalc", "plain"):
        lines.append(f"| {name} | {rates[name + ' forward']:,.1f} | {rates[name + ' train']:,.1f} |")
    lines.append(f"| ratio archcalc / plain | {vgg['ratio']['forward']:.3f} | {vgg['ratio']['train']:.3f} |")
    return "\n".join(lines) + "\n"


def _memory(timing: dict) -> str:
    return (f"{human_bytes(timing['peak_bytes']).split(' (')[0]} / "
            f"{human_bytes(timing['predicted_bytes']).split(' (')[0]} ({timing['memory_ratio']:.2f})")


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", nargs="*", type=Path, default=sorted((ROOT / "specs").glob("*.yaml")))
    parser.add_argument("--batch", type=int, default=32 if cuda else 2)
    parser.add_argument("--vgg-batch", type=int, default=64 if cuda else 1)
    parser.add_argument("--iterations", type=int, default=20 if cuda else 1)
    parser.add_argument("--warmup", type=int, default=5 if cuda else 1)
    parser.add_argument("--rounds", type=int, default=3 if cuda else 1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--channels-last", action="store_true", help="NHWC for both VGG16s")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "benchmarks" / "results")
    options = parser.parse_args(argv)
    options.device = "cuda" if cuda else "cpu"
    if not cuda:
        print("no GPU found: running on the CPU with a small batch and few iterations")
    device_name = torch.cuda.get_device_name() if cuda else "no GPU found (ran on the CPU)"
    report = {"environment": {"device_name": device_name, "cuda": cuda, "torch": torch.__version__,
                              "cuda_version": torch.version.cuda, "python": platform.python_version(),
                              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
              "batch": options.batch, "dtype": options.dtype, "iterations": options.iterations,
              "warmup": options.warmup, "specs": []}
    for path in options.specs:
        row = check_spec(path, options)
        print(f"{row['spec']}: {'ok' if row['ok'] else row.get('error') or row['disagreements']}", flush=True)
        report["specs"].append(row)
        if cuda:
            torch.cuda.empty_cache()
    report["vgg16"] = compare_vgg16(options)
    print(f"VGG16 archcalc/plain throughput: forward {report['vgg16']['ratio']['forward']:.3f}, "
          f"train {report['vgg16']['ratio']['train']:.3f}")
    stem = options.output_dir / ("gpu_check" if cuda else "gpu_check_cpu")
    options.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(f"{stem}.json", json.dumps(report, indent=2) + "\n")
    write_text(f"{stem}.md", markdown(report))
    print(f"wrote {stem}.md and {stem}.json")
    return 0 if all(row["ok"] for row in report["specs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
