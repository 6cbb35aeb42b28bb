"""Buffers are the elements of every registered buffer, as sum(b.numel() for b in model.buffers());
BatchNorm's are its running mean and variance (C each) and num_batches_tracked (one int64)."""
import pytest
from conftest import SPECS

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
