"""A spec compiled into a PyTorch nn.Module."""
from __future__ import annotations

from torch import nn

from ..gcpause import paused_gc
from .modules import construct, frozen_parameters, tie
from .plan import Plan, make_plan
from .tensors import check_tensor_sizes


class Network(nn.Module):
    """One submodule per layer, named after the spec's layers; forward follows each layer's
    ``inputs`` (any earlier layer or network input) and returns the spec's ``outputs``
    (one tensor, or a tuple when there are several).
    """

    def __init__(self, plan: Plan):
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

    def forward(self, *inputs):
        return self.run(*inputs)

    def run(self, *inputs, observe=None):
        """forward, calling ``observe(layer name, output)`` after each layer."""
        if len(inputs) != len(self._input_names):
            raise TypeError(f"{self._spec_name} takes {len(self._input_names)} input(s) "
                            f"({', '.join(self._input_names)}), got {len(inputs)}")
        values = dict(zip(self._input_names, inputs))
        for name, named, layer, reads, released in self._walk:
            value = layer(*(values[read] for read in reads))
            values.update(named(value))  # a split's tuple: each part under its output's name
            if observe is not None:
                observe(name, value)
            for gone in released:
                del values[gone]
        results = tuple(values[name] for name in self._output_names)
        return results[0] if len(results) == 1 else results

    def submodule(self, layer_name: str) -> nn.Module:
        """The module computing the spec's layer ``layer_name``."""
        return self._by_name[layer_name]


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
