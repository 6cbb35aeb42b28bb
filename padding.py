"""Edges and padding of a 1D filter: PyTorch code exported by archcalc 0.1.0 from specs/course_padding.yaml.

The course's "how to handle the edges?" (slides 60-61): the signal [10, 20, -30, 40, -50] and
the filter [.1, .2, .3]. Without padding 3 outputs remain (-4, 8, -10); padding 1 keeps all 5,
the pad holding zeros (8, -4, 8, -10, -6), a reflection (10, -4, 8, -10, 6) or the stretched
edge value, PyTorch's 'replicate' (9, -4, 8, -10, -21). Try: archcalc run
specs/course_padding.yaml --values "[10,20,-30,40,-50]"

Per sample, channels first: input 1x5 -> valid 1x3, zeros 1x5, reflect 1x5, replicate 1x5.
12 parameters. Needs only torch:

    model = EdgesAndPaddingOfA1DFilter()
    y = model(x)  # x: (N, 1, 5), batch first
"""

import torch
from torch import nn


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


class EdgesAndPaddingOfA1DFilter(nn.Module):
    def __init__(self):
        super().__init__()
        self.valid = preset(nn.Conv1d(1, 1, 3, bias=False), weight=(0.1, 0.2, 0.3))
        self.zeros = preset(nn.Conv1d(1, 1, 3, padding=1, bias=False), weight=(0.1, 0.2, 0.3))
        self.reflect = preset(nn.Conv1d(1, 1, 3, padding=1, bias=False, padding_mode='reflect'), weight=(0.1, 0.2, 0.3))
        self.replicate = preset(nn.Conv1d(1, 1, 3, padding=1, bias=False, padding_mode='replicate'), weight=(0.1, 0.2, 0.3))

    def forward(self, input_):
        valid = self.valid(input_)
        zeros = self.zeros(input_)
        reflect = self.reflect(input_)
        replicate = self.replicate(input_)
        return valid, zeros, reflect, replicate
