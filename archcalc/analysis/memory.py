"""Memory for training, and the largest batch that fits: a stated model, in exact integers.

    total = weights + gradients + optimizer state                      (independent of the batch)
          + batch x (activations kept for back-propagation + the largest layer's output gradient)

- weights: every parameter and floating buffer in the analysis dtype (the int64 batch counters of
  BatchNorm: 8 bytes). Mixed precision (torch.autocast) keeps fp32 master weights and adds a
  16-bit copy of the trainable ones for the forward pass.
- gradients: one per trainable parameter (fp32 under mixed precision).
- optimizer state per trainable parameter: sgd 0, momentum 1 (the velocity), adam and adamw 2
  (the two moments); fp32 under mixed precision.
- activations kept: the network input and every layer's output (its neurons, the forward memory's
  count) and the attention probabilities of eager attention (heads x T x S per attention layer,
  none under a fused kernel), in the dtype (16 bits under mixed precision).
- during back-propagation the gradient of a layer's output briefly sits beside all of that: the
  peak adds the largest layer's output once.

Not counted: the CUDA context and cuDNN workspaces, max-pool indices and dropout masks, the
outputs of standalone activations that PyTorch does not run in place, the gates an LSTM keeps,
and the caching allocator's rounding and fragmentation. A measured peak (torch.cuda.max_memory_allocated)
is therefore expected at or somewhat above this figure, not below it.

Inference keeps no gradients and no optimizer state: weights + batch x (input + every layer's
output), the forward memory's convention plus the input batch itself (16-bit activations under
mixed precision).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..choices import DTYPE_BYTES, MIXED_PRECISION, OPTIMIZER_STATES
from ..errors import SpecError
from .walk import Analysis

MASTER_BYTES = DTYPE_BYTES["float32"]  # master weights, gradients and optimizer state under mixed precision


@dataclass(frozen=True)
class TrainingMemory:
    """Training memory at ``batch``; every figure in bytes. ``sample_*`` figures are per sample."""

    optimizer: str
    mixed_precision: str | None      # None, "bf16" or "fp16"
    batch: int
    weight_bytes: int                # parameters + buffers (+ the 16-bit copy under mixed precision)
    gradient_bytes: int
    optimizer_bytes: int
    sample_activation_bytes: int     # input + every layer's output, one sample
    largest_layer: str | None        # the layer with the largest output
    sample_largest_bytes: int        # its output, one sample: its gradient's size in the backward pass
    rule_of_thumb_bytes: int         # the course's: twice the forward memory at the batch

    @property
    def fixed_bytes(self) -> int:
        """What does not depend on the batch: weights, gradients, optimizer state."""
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes

    @property
    def sample_bytes(self) -> int:
        """What each sample of the batch adds."""
        return self.sample_activation_bytes + self.sample_largest_bytes

    @property
    def activation_bytes(self) -> int:
        return self.sample_activation_bytes * self.batch

    @property
    def largest_layer_bytes(self) -> int:
        return self.sample_largest_bytes * self.batch

    @property
    def total_bytes(self) -> int:
        return self.fixed_bytes + self.sample_bytes * self.batch

    def max_batch(self, budget: int) -> int:
        """The largest batch whose training total fits in ``budget`` bytes (0: not even one sample)."""
        return largest_batch(budget, self.fixed_bytes, self.sample_bytes)


def input_elements(analysis: Analysis) -> int:
    """Values in one sample of the network input(s)."""
    return sum(prod(shape) for shape in analysis.input_shapes.values())


def training_memory(analysis: Analysis, optimizer: str = "adam",
                    mixed_precision: str | None = None) -> TrainingMemory:
    """The training memory of ``analysis`` at its batch (see the module's model)."""
    if optimizer not in OPTIMIZER_STATES:
        raise SpecError(f"unknown optimizer {optimizer!r}", hint="one of " + ", ".join(OPTIMIZER_STATES))
    totals = analysis.totals
    trainable = totals.trainable_params
    stored = totals.param_bytes + totals.buffer_bytes  # in the dtype: float32 under mixed precision
    if mixed_precision is None:
        size = master = DTYPE_BYTES[analysis.dtype]
        weight_bytes = stored
    else:
        if mixed_precision not in MIXED_PRECISION:
            raise SpecError(f"unknown mixed precision {mixed_precision!r}",
                            hint="one of " + ", ".join(MIXED_PRECISION))
        if analysis.dtype != "float32":
            raise SpecError(f"mixed precision keeps float32 master weights, but the dtype is {analysis.dtype}",
                            hint="leave --dtype at float32 with --mixed-precision")
        size, master = DTYPE_BYTES[MIXED_PRECISION[mixed_precision]], MASTER_BYTES
        weight_bytes = stored + trainable * size
    largest = max(analysis.layers, key=lambda stats: stats.neurons, default=None)
    return TrainingMemory(
        optimizer, mixed_precision, analysis.batch, weight_bytes, trainable * master,
        OPTIMIZER_STATES[optimizer] * trainable * master,
        (input_elements(analysis) + totals.neurons + totals.scores) * size,
        largest.name if largest is not None else None, largest.neurons * size if largest is not None else 0,
        totals.training_bytes_estimate)


def inference_max_batch(analysis: Analysis, budget: int, mixed_precision: str | None = None) -> int:
    """The largest batch whose inference memory fits in ``budget`` bytes (0: not even one sample);
    under mixed precision the activations are 16-bit, the weights stay in the dtype."""
    totals = analysis.totals
    size = DTYPE_BYTES[MIXED_PRECISION[mixed_precision] if mixed_precision else analysis.dtype]
    return largest_batch(budget, totals.param_bytes + totals.buffer_bytes,
                         (input_elements(analysis) + totals.neurons + totals.scores) * size)


def largest_batch(budget: int, fixed: int, per_sample: int) -> int:
    """max n with fixed + n * per_sample <= budget; 0 when the fixed part alone does not fit."""
    return (budget - fixed) // per_sample if budget >= fixed else 0


@dataclass(frozen=True)
class MaxBatch:
    """The largest batches that fit in ``budget`` bytes (0: not even one sample)."""

    budget: int
    inference: int
    training: int
    optimizer: str
    mixed_precision: str | None


def max_batch(analysis: Analysis, budget: int, optimizer: str = "adam",
              mixed_precision: str | None = None) -> MaxBatch:
    """Largest inference and training batches for a memory budget (see the module's model)."""
    training = training_memory(analysis, optimizer, mixed_precision)
    return MaxBatch(budget, inference_max_batch(analysis, budget, mixed_precision), training.max_batch(budget),
                    optimizer, mixed_precision)
