"""The tensors a plan makes: the sample batch fed to its inputs, and the sizes PyTorch can hold.

PyTorch computes a tensor's storage size in bytes as an int64 on every device, the meta device
included; a tensor of more than 2^63-1 bytes fails with "Storage size calculation overflowed"
while it is created. The static analysis counts such networks exactly; check_tensor_sizes
refuses them, with the bytes they would need, before any PyTorch module is built.
"""
from __future__ import annotations

from math import prod

from ..errors import SpecError, UsageError
from ..layers import parts, shape_text

LARGEST_TENSOR_BYTES = 2**63 - 1
STATIC_HINT = "the static analysis (archcalc inspect, explain) needs no tensors and counts any size exactly"


def sample_inputs(torch, plan, batch: int, dtype, device, values) -> tuple:
    """One tensor per network input: ``values`` for a single input, else what its first reader
    accepts (Layer.sample_input)."""
    readers = first_readers(plan)
    if values is not None:
        if len(plan.inputs) != 1:
            raise UsageError("--values", values, f"fills one input, but this network has {len(plan.inputs)} "
                             f"({', '.join(plan.inputs)})")
        name, shape = next(iter(plan.inputs.items()))
        kind = _sample(torch, readers.get(name), shape, 1, dtype, "meta").dtype  # token ids stay integers
        return (torch.tensor(values, dtype=kind, device=device).reshape(1, *shape),)
    return tuple(_sample(torch, readers.get(name), shape, batch, dtype, device)
                 for name, shape in plan.inputs.items())


def check_tensor_sizes(torch, plan, batch: int | None, dtype) -> None:
    """A SpecError for the first tensor of more than 2^63-1 bytes the network would make: a
    network input at ``batch``, a layer's weights (its parameters and buffers together, a bound
    on its largest weight tensor), a layer's output at ``batch`` (None: weights only, for a model
    built but not run). Sizes in ``dtype``; token ids in their own integer type."""
    size = dtype.itemsize
    dtype_name = _name(dtype)
    if batch is not None:
        readers = first_readers(plan)
        for name, shape in plan.inputs.items():
            element = _sample(torch, readers.get(name), (1,) * len(shape), 1, dtype, "meta")
            numbers = batch * prod(shape)
            if numbers * element.element_size() > LARGEST_TENSOR_BYTES:
                raise SpecError(f"network input {name} ({shape_text(shape)}) at batch {batch:,} holds "
                                f"{_too_many(numbers, element.element_size(), _name(element.dtype))}",
                                hint="lower --batch" if batch > 1 else STATIC_HINT)
    for step in plan.steps:
        stats = step.stats
        weights = stats.params + stats.buffers
        if weights * size > LARGEST_TENSOR_BYTES:
            raise SpecError(f"its parameters and buffers hold {_too_many(weights, size, dtype_name)}",
                            hint=STATIC_HINT, location=stats.node.location, layer=stats.name)
        numbers = (batch or 0) * max(map(prod, parts(stats.output_shape)))  # each of a split's is a tensor
        if numbers * size > LARGEST_TENSOR_BYTES:
            raise SpecError(f"its output at batch {batch:,} holds {_too_many(numbers, size, dtype_name)}",
                            hint="lower --batch" if batch > 1 else STATIC_HINT,
                            location=stats.node.location, layer=stats.name)


def first_readers(plan) -> dict:
    """Network input name -> the Layer that reads it first (one pass over the steps)."""
    readers: dict = {}
    for step in plan.steps:
        for name in step.reads:
            if name in plan.inputs:
                readers.setdefault(name, step.stats.layer)
    return readers


def _sample(torch, reader, shape, batch: int, dtype, device):
    if reader is None:  # an input no layer reads still takes an argument
        return torch.randn((batch, *shape), dtype=dtype, device=device)
    return reader.sample_input(shape, batch, dtype, device)


def _name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _too_many(numbers: int, size: int, dtype_name: str) -> str:
    return (f"{numbers:,} numbers, {numbers * size:,} bytes in {dtype_name}: more than PyTorch's largest "
            f"tensor, 2^63-1 = {LARGEST_TENSOR_BYTES:,} bytes")
