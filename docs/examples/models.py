"""Small PyTorch models as people write them (not by archcalc), for `archcalc import` (docs/commands.md,
tests/test_import.py)."""
import torch
from torch import nn


class Block(nn.Module):
    """A ResNet basic block; a 1x1 projection where the shape changes."""

    def __init__(self, channels_in, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or channels_in != channels:
            self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, num_classes=10, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = nn.Sequential(*[Block(width, width) for _ in range(3)])
        self.layer2 = nn.Sequential(Block(width, 2 * width, 2), Block(2 * width, 2 * width),
                                    Block(2 * width, 2 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def tiny_resnet(num_classes=10, width=8):
    return TinyResNet(num_classes, width)


class Branchy(nn.Module):
    """Functional calls, a concat, a split and a layer scale, as torchvision's models use them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 6, 1)
        self.b = nn.Conv2d(4, 2, 3, padding=1)
        self.scale = nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), nn.functional.gelu(self.b(x))], dim=1)
        y = self.scale * y
        z = self.fc(self.norm(y.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        left, right = torch.split(z, [3, 5], dim=1)
        z = torch.cat([right, left], 1) + y
        z = nn.functional.max_pool2d(z, 3, 2, ceil_mode=True)
        return self.head(z.flatten(1))


class Rolled(nn.Module):
    """Operations no kind expresses: a roll and a product with a constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, dims=2)
        return x * 2


class Unknown(nn.Module):
    """A roll and a module no kind expresses, nn.Bilinear (16 x 16 x 5 weights + 5 biases), which
    archcalc import --allow-opaque keeps as opaque layers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 16)
        self.mix = nn.Bilinear(16, 16, 5)

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, dims=2)
        x = self.fc(x.flatten(1))
        return self.mix(x, torch.relu(x))


class TinyViT(nn.Module):
    """A vision transformer in plain torch (torchvision's ViT, small): patches by a strided conv,
    a class token and position embeddings as nn.Parameters, nn.MultiheadAttention, the class
    token's vector (or, with ``pool='mean'``, the tokens' mean) to the head."""

    def __init__(self, width=32, heads=4, patch=8, image=32, classes=10, pool="token"):
        super().__init__()
        self.pool = pool
        self.patches = nn.Conv2d(3, width, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, width) * 0.02)
        self.norm1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.positions
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.head(x[:, 0] if self.pool == "token" else x.mean(1))
