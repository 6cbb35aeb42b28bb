"""archcalc: an exact architecture calculator and static shape analyzer for neural networks.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("specs/alexnet.yaml"))
    >>> result.totals.params
    62378344
"""
from .errors import ArchcalcError, GeometryError, Location, MissingDependency, SpecError

__version__ = "0.1.0"

# Imported on first use, so `archcalc --help` need not build every layer kind and `import
# archcalc` never loads torch: name -> (module, attribute).
_LAZY = {
    "DTYPE_BYTES": (".choices", "DTYPE_BYTES"),
    "Analysis": (".analysis", "Analysis"),
    "LayerStats": (".analysis", "LayerStats"),
    "Totals": (".analysis", "Totals"),
    "analyze": (".analysis", "analyze"),
    "Node": (".spec", "Node"),
    "Spec": (".spec", "Spec"),
    "load": (".spec", "load"),
    "loads": (".spec", "loads"),
    "build": (".backend", "build"),  # spec -> torch nn.Module
}

__all__ = ["ArchcalcError", "GeometryError", "Location", "MissingDependency", "SpecError", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value
    return value
