"""archcalc import of dense connectivity (DenseNet): each layer's growing concatenation of every
output before it, written as a chain (importer/concats.py) so that the layers repeat.

The numbers are PyTorch's (parameters(), FlopCounterMode, the outputs with the weights copied).
"""
import sys
import types

import pytest

from archcalc.layers.shapes import FeatureMap

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archcalc.backend.importer import import_model, output_difference  # noqa: E402


class DenseLayer(nn.Module):
    """torchvision's _DenseLayer, small: the concatenation of every earlier output, then
    norm, relu, 1x1 conv, norm, relu, 3x3 conv to ``growth`` new channels."""

    def __init__(self, channels, growth):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(channels), nn.ReLU()
        self.conv1 = nn.Conv2d(channels, 2 * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(2 * growth), nn.ReLU()
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers, channels, growth):
        super().__init__({f"denselayer{i + 1}": DenseLayer(channels + i * growth, growth) for i in range(layers)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.block1 = DenseBlock(4, 8, 4)
        self.transition = nn.Sequential(nn.BatchNorm2d(24), nn.Conv2d(24, 12, 1, bias=False), nn.AvgPool2d(2))
        self.block2 = DenseBlock(3, 12, 4)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(self.stem(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_dense_blocks_import_as_repeats_with_pytorchs_numbers():
    module = types.ModuleType("dense_test_models")
    module.TinyDenseNet = TinyDenseNet
    sys.modules["dense_test_models"] = module
    try:
        imported = import_model("dense_test_models:TinyDenseNet", [FeatureMap((3, 8, 8))])
    finally:
        del sys.modules["dense_test_models"]
    model = TinyDenseNet()
    assert imported.exact and imported.spec.params == sum(p.numel() for p in model.parameters())
    text = imported.text
    assert "      - concat: {name: cat, inputs: [in, conv2]}" in text  # each layer ends joining its channels
    assert "- repeat: {name: block1, times: 4, layers: [dense_layer: {name: block1}]}" in text
    assert "- repeat: {name: block2, times: 3, layers: [dense_layer: {name: block2}]}" in text
    assert imported.lines < 30
    torch.manual_seed(0)
    assert output_difference(imported, model) < 1e-4
