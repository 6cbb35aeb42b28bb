"""The few modules the spec language needs and torch.nn lacks.

``archcalc export`` copies the source of each helper a model uses into the exported file, so
every helper here must be self-contained: it may use only ``torch`` and ``nn``.
"""
from __future__ import annotations

import torch
from torch import nn


class Add(nn.Module):
    """Element-wise sum of the inputs, y = a + b + ... (ResNet's shortcut)."""

    def forward(self, *inputs):
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total


class Concat(nn.Module):
    """The inputs joined along one tensor dimension (1 = channels, after the batch)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        return torch.cat(inputs, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


def preset(module, weight=None, bias=None):
    """``module`` with its weight and bias set to given numbers (the course's worked examples).

    A flat list fills the tensor in PyTorch's order (filters, channels, then kernel axes).
    """
    with torch.no_grad():
        if weight is not None:
            module.weight.copy_(torch.tensor(weight).reshape(module.weight.shape))
        if bias is not None:
            module.bias.copy_(torch.tensor(bias).reshape(module.bias.shape))
    return module


# Recipes name a helper by its Python name; add new helpers here.
HELPERS = {helper.__name__: helper for helper in (Add, Concat, preset)}


def resolve(name: str):
    """The constructor a recipe names: 'nn.Conv2d' -> torch.nn.Conv2d, 'Add' -> Add."""
    if name.startswith("nn."):
        return getattr(nn, name[len("nn."):])
    return HELPERS[name]
