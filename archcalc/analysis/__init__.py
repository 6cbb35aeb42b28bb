"""The analysis stage, pure integers and no torch: the walk that sizes every layer (walk.py),
receptive fields, training memory and convolutions as matrix products."""
from .walk import Analysis, Failure, LayerStats, Totals, analyze

__all__ = ["Analysis", "Failure", "LayerStats", "Totals", "analyze"]
