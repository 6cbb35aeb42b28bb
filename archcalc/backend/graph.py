"""A spec compiled into a PyTorch nn.Module."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.checkpoint import checkpoint

from ..gcpause import paused_gc
from .modules import construct, frozen_parameters, tie
from .plan import Plan, make_plan
from .tensors import check_tensor_sizes


class Network(nn.Module):
    """One submodule per layer, named after the spec's layers; forward follows each layer's
    ``inputs`` (any earlier layer or network input) and returns the spec's ``outputs``
    (one tensor, or a tuple when there are several).

    ``checkpoint``: runs of consecutive layers (their names, in spec order) that forward runs under
    torch.utils.checkpoint.checkpoint(use_reentrant=False): each run is a function of the values it
    reads from before it, returning those that later layers read (analysis/checkpoint.py).
    """

    def __init__(self, plan: Plan, checkpoint: tuple[tuple[str, ...], ...] = ()):
        super().__init__()
        # its own attributes start with '_' (no layer's attribute does: see plan.python_name)
        self._spec_name = plan.analysis.spec.name
        self._input_names = tuple(plan.inputs)
        self._output_names = tuple(plan.outputs)
        for step in plan.steps:
            if step.shares is not None:  # the shared layer's module, registered once, applied again
                continue
            layer = construct(step.recipe)
            if not step.stats.node.trainable:
                layer.requires_grad_(False)
            for _, parameter in frozen_parameters(layer, step.stats.node.frozen):
                parameter.requires_grad_(False)
            if step.ties is not None:
                tie(layer, self._modules[step.ties])
            self.add_module(step.attribute, layer)
        # a plain list (not registered twice): the walk of forward, in spec order
        self._walk = [(step.name, step.stats.node.named, self._modules[step.module], step.reads, released)
                      for step, released in zip(plan.steps, plan.releases())]
        self._by_name = {step.name: self._modules[step.module] for step in plan.steps}
        self._pieces = _pieces(self._walk, [step.stats.node.outputs for step in plan.steps], checkpoint, plan.outputs)
        self._observe = None   # run's observer while forward runs (a recomputation in backward is not observed)

    def forward(self, *inputs):
        return self.run(*inputs)

    def run(self, *inputs, observe=None):
        """forward, calling ``observe(layer name, output)`` after each layer."""
        if len(inputs) != len(self._input_names):
            raise TypeError(f"{self._spec_name} takes {len(self._input_names)} input(s) "
                            f"({', '.join(self._input_names)}), got {len(inputs)}")
        values = dict(zip(self._input_names, inputs))
        self._observe = observe
        try:
            for piece in self._pieces:
                if isinstance(piece, _Segment):
                    results = checkpoint(self._segment, piece, *(values[read] for read in piece.reads),
                                         use_reentrant=False)
                    values.update(zip(piece.writes, results))
                    del results
                    for gone in piece.released:
                        del values[gone]
                else:
                    self._step(values, *piece)
        finally:
            self._observe = None
        results = tuple(values[name] for name in self._output_names)
        return results[0] if len(results) == 1 else results

    def _step(self, values: dict, name, named, layer, reads, released) -> None:
        value = layer(*(values[read] for read in reads))
        values.update(named(value))  # a split's tuple: each part under its output's name
        if self._observe is not None:
            self._observe(name, value)
        for gone in released:
            del values[gone]

    def _segment(self, segment: _Segment, *inputs) -> tuple:
        """A checkpointed run of layers: the values it reads in, those read after it out."""
        values = dict(zip(segment.reads, inputs))
        del inputs   # checkpoint's own reference keeps them (its saved inputs)
        for step in segment.steps:
            self._step(values, *step)
        return tuple(values[name] for name in segment.writes)

    def submodule(self, layer_name: str) -> nn.Module:
        """The module computing the spec's layer ``layer_name``."""
        return self._by_name[layer_name]


@dataclass(frozen=True)
class _Segment:
    steps: tuple        # the walk's entries, in order
    reads: tuple        # values it reads from before it (layers' outputs, network inputs), in first-read order
    writes: tuple       # values it makes that later layers read or the network returns
    released: tuple     # values from before it that it reads for the last time


def _pieces(walk: list, made: list, checkpoint: tuple, outputs: tuple) -> list:
    """The walk with each checkpointed run of layers (``checkpoint``: their names) made one
    _Segment; ``made``: per walk entry, the names of the values it makes."""
    where = {name: index for index, (name, *_) in enumerate(walk)}
    ends = {where[names[0]]: where[names[-1]] for names in checkpoint}
    pieces: list = []
    index = 0
    while index < len(walk):
        if index not in ends:
            pieces.append(walk[index])
            index += 1
            continue
        end = ends[index] + 1
        steps, inside = tuple(walk[index:end]), {value for values in made[index:end] for value in values}
        later = set(outputs) | {read for *_, reads, _ in walk[end:] for read in reads}
        pieces.append(_Segment(
            steps, tuple(dict.fromkeys(read for *_, reads, _ in steps for read in reads if read not in inside)),
            tuple(value for values in made[index:end] for value in values if value in later),
            tuple(gone for *_, released in steps for gone in released if gone not in inside)))
        index = end
    return pieces


@paused_gc
def build(source, *, device=None, dtype=None, seed: int | None = None, **analyze_options) -> Network:
    """Network for a spec path, Spec or Analysis, on ``device`` (built there: 'meta' allocates
    nothing), cast to ``dtype`` (a torch dtype or its name) when given."""
    import torch

    plan = make_plan(source, **analyze_options)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    built_in = torch.get_default_dtype()  # then cast to dtype: the larger of the two must fit
    check_tensor_sizes(torch, plan, None, max(built_in, dtype or built_in, key=lambda kind: kind.itemsize))
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        network = Network(plan)
    if dtype is not None:
        network.to(dtype)
    return network
