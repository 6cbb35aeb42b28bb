"""Buffers are the elements of every registered buffer, as sum(b.numel() for b in model.buffers());
BatchNorm's are its running mean and variance (C each) and num_batches_tracked (one int64)."""
import pytest
from conftest import SPECS, spec_text

import archcalc

RESNET18_BUFFERS = 9_620  # torchvision.models.resnet18(): sum(b.numel() for b in model.buffers()), 20 BatchNorms


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_resnet18_buffers_and_their_bytes_are_pytorchs(dtype):
    analysis = archcalc.analyze(archcalc.load(str(SPECS / "resnet18.yaml")), dtype=dtype)
    assert analysis.totals.buffers == RESNET18_BUFFERS
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    model = build(analysis, device="meta", dtype=getattr(torch, dtype))
    buffers = list(model.buffers())
    assert sum(b.numel() for b in buffers) == RESNET18_BUFFERS
    # .to(dtype) converts the running statistics, not the int64 counters: 8 bytes each in any dtype
    assert sum(b.numel() * b.element_size() for b in buffers) == analysis.totals.buffer_bytes
    assert analysis.totals.buffer_bytes == 9_600 * {"float32": 4, "float16": 2}[dtype] + 20 * 8


@pytest.mark.parametrize("fragment,module,args", [
    ("batchnorm", "BatchNorm2d", {}),
    ("instancenorm: {track_running_stats: true}", "InstanceNorm2d", {"track_running_stats": True}),
    ("instancenorm", "InstanceNorm2d", {}),
    ("groupnorm: 3", "GroupNorm", {"num_groups": 3}),
])
def test_norm_buffers_are_every_registered_buffer(fragment, module, args):
    analysis = archcalc.analyze(archcalc.loads(spec_text((6, 4, 4), fragment)), dtype="float16")
    torch = pytest.importorskip("torch")
    channels = {"num_channels": 6} if module == "GroupNorm" else {"num_features": 6}
    buffers = list(getattr(torch.nn, module)(**channels, **args).half().buffers())
    assert analysis.totals.buffers == sum(b.numel() for b in buffers)
    assert analysis.totals.buffer_bytes == sum(b.numel() * b.element_size() for b in buffers)
