"""The PyTorch backend: compile a spec into an nn.Module, verify it, export it as source.

torch is imported only when one of these functions runs, never by ``import archcalc``:

    from archcalc.backend import build, verify, export_source
    model = build("specs/vgg16.yaml")                 # or a Spec, or an Analysis
    result = verify(archcalc.analyze(spec), device="meta")
"""
from __future__ import annotations


def build(source, *, device=None, dtype=None, seed: int | None = None, **analyze_options):
    """An nn.Module for a spec path, a Spec or an Analysis (``analyze_options`` as in analyze).

    One submodule per layer, named after the spec's layers; forward(*inputs) takes the
    network inputs in the spec's order and returns its output (a tuple for several outputs).
    """
    from .graph import build as build_network

    return build_network(source, device=device, dtype=dtype, seed=seed, **analyze_options)


def verify(analysis, **options):
    """Compile, run and compare with the analyzer; see verification.verify for the options."""
    from .verification import verify as run_verification

    return run_verification(analysis, **options)


def export_source(source, **analyze_options) -> str:
    """Readable PyTorch source for the network: one nn.Module class, no archcalc needed."""
    from .export import export_source as render

    return render(source, **analyze_options)


def require_torch():
    """The torch module, or a MissingDependency that says how to install it."""
    from ..errors import MissingDependency

    try:
        import torch
    except ImportError:
        raise MissingDependency(
            "this command needs PyTorch, which is not installed: pip install -e '.[torch]' in a checkout "
            "(or pip install torch==2.13.0 for the CPU build)") from None
    return torch
