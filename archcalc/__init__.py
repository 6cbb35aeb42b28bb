"""archcalc: an exact architecture calculator and static shape analyzer for neural networks.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("specs/alexnet.yaml"))
    >>> result.totals.params
    62378344
"""
from .analysis import DTYPE_BYTES, Analysis, LayerStats, Totals, analyze
from .errors import ArchcalcError, GeometryError, Location, MissingDependency, SpecError
from .spec import Node, Spec, load, loads

__version__ = "0.1.0"

__all__ = ["DTYPE_BYTES", "Analysis", "ArchcalcError", "GeometryError", "LayerStats", "Location",
           "MissingDependency", "Node", "Spec", "SpecError", "Totals", "analyze", "load", "loads"]


def __getattr__(name: str):
    """``archcalc.build`` (spec -> torch nn.Module) is imported on first use: ``import archcalc``
    never loads torch."""
    if name == "build":
        from .backend import build

        return build
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
