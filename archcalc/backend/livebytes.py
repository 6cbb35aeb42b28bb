"""Live tensor bytes on any device, without an allocator's statistics: a TorchDispatchMode that
registers each storage an operation returns once, with a weak reference whose callback takes its
bytes off when PyTorch frees it. Views share their base's storage and in-place results return it,
so neither counts twice. A wrapper subclass (DTensor, FSDP2's sharded parameters) counts through
its inner tensors. Tensors made before (parameters, gradients, optimizer state, the batch) are
registered with ``track``.

Not seen: what a kernel allocates and frees inside one operation, and buffers a C++ component
allocates outside the dispatcher (none of DDP's or FSDP2's on CPU, as the distributed tests show).
The memory issue's tracker (issue 15) is to replace this minimal one: same ``track``, ``peak``.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """``current`` live bytes and their maximum, ``peak``, since it was made.

    The sizes are read again after every operation, not remembered: FSDP2 frees and re-allocates
    its gathered parameters by resizing their storages in place (``resize_(0)``), which no
    operation returns."""

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._storages: dict[int, weakref.ref] = {}

    def track(self, *tensors) -> None:
        """Count tensors that already exist (each storage once)."""
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                self._add(tensor)
        self._measure()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor):
                self._add(value)
        self._measure()
        return result

    def _add(self, tensor: torch.Tensor) -> None:
        if is_traceable_wrapper_subclass(tensor):
            for name in tensor.__tensor_flatten__()[0]:
                inner = getattr(tensor, name)
                if isinstance(inner, torch.Tensor):
                    self._add(inner)
            return
        if tensor.is_sparse or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        known = self._storages.get(key)
        if known is None or known() is not storage:
            self._storages[key] = weakref.ref(storage, self._freed(key))

    def _freed(self, key: int):
        def callback(reference):
            if self._storages.get(key) is reference:
                del self._storages[key]
        return callback

    def _measure(self) -> None:
        self.current = sum(storage.nbytes() for storage in map(weakref.ref.__call__, list(self._storages.values()))
                           if storage is not None)
        self.peak = max(self.peak, self.current)
