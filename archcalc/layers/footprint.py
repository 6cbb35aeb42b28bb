"""What a layer's tensor operations allocate and what autograd keeps of them, as data.

Each layer kind describes its PyTorch module as a list of ``Op`` (Layer.memory_ops); the memory
schedule (analysis/schedule.py) replays them in execution order to find the peak. An op reads
the previous op's output (the first op reads the layer's inputs), allocates its output (or
returns a view of its input), may return extra tensors (max-pool indices, batch statistics, a
dropout mask), and, when it is differentiable, keeps for the backward pass what its PyTorch
derivative formula saves (tools/autograd/derivatives.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError

ACTIVATION = "activation"  # the network's dtype
MASK = "mask"              # dropout's mask: bool from the fused kernel (CUDA), the dtype on CPU
INPUT, OUTPUT = "input", "output"
LOWER, FLOAT32 = "lower", "float32"   # autocast's lists: ops run in 16 bits, ops run in float32
PRODUCT = "product"   # an op whose matrix product autocast runs in 16 bits, the rest as what it reads
# as a dtype (Tensor.dtype, Op.dtype), LOWER: autocast's 16-bit dtype, the network's without autocast;
# NONE: no tensor (Tensor.autocast: one that autocast does not make, or makes only under it);
# OPMATH: float32 for a 16-bit tensor, else its own dtype (PyTorch's toOpMathType: what the
# attention's math kernel computes 16-bit q, k and v in)
NONE = "none"
OPMATH = "opmath"

# The forward's tensor operations one replay of the memory schedule runs at most, each layer at
# least one (a training step replays them again backward): about a second on this project's
# 2-core machine, at 30-50 µs an op with its backward. The shipped specs run at most 1,483
# (tinyllama), an LSTM of 4 layers x 2 directions at most 51 (whatever its steps: a step is no
# op of its own); what a spec field could multiply without end (a recurrent stack's 2^63
# layers) is refused against it.
MAX_OPS = 20_000


def too_many_ops(what: str, field: str | None = None) -> SpecError:
    """The refusal of a replay past MAX_OPS: ``what`` says what runs more ("this gru's 10^6
    layers x 2 directions run more"); ``field``: the layer argument at fault."""
    return SpecError(f"the memory schedule replays at most {MAX_OPS:,} tensor operations (about a second); {what}",
                     hint="memory, plan, inspect's --train, --max-batch and --gpus, and run --memory replay every "
                          "operation: make the network smaller (inspect's counts, FLOPs and the course's rule do not "
                          "replay)",
                     field=field)
# how a gradient lies in memory: contiguous, contiguous with a map's channels last, the loss's
# scalar expanded (no strides), permuted
PLAIN, CHANNELS_LAST, EXPANDED, STRIDED = "plain", "channels last", "expanded", "strided"


def layer_input(k: int) -> str:
    """In Op.reads: the layer's k-th input alone (INPUT: all of them)."""
    return f"{INPUT}{k}"


def read(k: int) -> str:
    """In Op.saves: the k-th tensor the op reads alone (INPUT: all of them)."""
    return f"read{k}"


@dataclass(frozen=True)
class Tensor:
    """A tensor an op returns besides its output: ``elements`` per sample (``batched``) or in all,
    of ``dtype``; of ``autocast`` under mixed precision, when given; of ``cast`` when autocast
    casts the state a recurrent step reads to 16 bits (the op computes in a wider dtype: a float32
    state), when given. NONE: not made then (Tensor(n, NONE, cast=LOWER): the state's 16-bit copy)."""

    elements: int
    dtype: str = ACTIVATION
    batched: bool = True
    autocast: str = ""
    cast: str = ""


@dataclass(frozen=True)
class Region:
    """One region of a oneDNN workspace, per sample: ``rows`` x ``columns`` numbers of ``dtype``,
    each row padded (``padded``) to oneDNN's leading dimension (rnn_utils' get_good_ld): the
    columns rounded up to 64 bytes' worth, one more such step when that is a multiple of 256."""

    rows: int
    columns: int
    dtype: str = ACTIVATION
    padded: bool = True

    def bytes(self, itemsize: int) -> int:
        """Its bytes per sample with numbers of ``itemsize`` bytes."""
        step = 64 // itemsize
        columns = -(-self.columns // step) * step if self.padded else self.columns
        if self.padded and columns % 256 == 0:
            columns += step
        return self.rows * columns * itemsize


@dataclass(frozen=True)
class Workspace:
    """A oneDNN workspace: ``regions`` (footprint.Region, per sample), every region starting on a
    ``page`` boundary and the whole rounded up to one (rnn_utils' register_space), as an unsigned
    byte tensor. Its bytes are exact at the replayed batch; the schedule's line through other batch
    sizes keeps the regions' slope (within ``len(regions)`` pages). ``dtypes``: bytes per number
    of each dtype the regions name."""

    regions: tuple[Region, ...]
    page: int = 4096

    def slope(self, dtypes: dict[str, int]) -> int:
        """Bytes per sample, before the pages round them."""
        return sum(region.bytes(dtypes[region.dtype]) for region in self.regions)

    def bytes(self, batch: int, dtypes: dict[str, int]) -> int:
        return sum(-(-region.bytes(dtypes[region.dtype]) * batch // self.page) * self.page
                   for region in self.regions)


@dataclass(frozen=True)
class Op:
    """One tensor operation of a layer.

    output: elements per sample of the new tensor it returns; None: a view of its (first) input.
    part: its output is a view of part of its (first) input instead (a slice, a narrow): ``output``
           elements per sample of that tensor's bytes, none of its own.
    extras: the other tensors it returns; freed at once unless saved.
    saves: what autograd keeps for the backward pass: INPUT (each input the op reads), read(k)
           (its k-th), OUTPUT, or the index of one of ``extras``.
    gradient: "new": the backward allocates one gradient per input that needs it; "view": it
           passes views of its output's gradient on (reshape, slicing, addition); "always": a new
           one even for an input that needs none (a kernel that computes it regardless); "split":
           a part (``part``) of a split: the parts' gradients joined into one of the whole
           (split_with_sizes_backward), zeros for a part no gradient reaches.
    weights: the layer's parameters are used here: their gradients appear in this op's backward
           (True: all of them; a number: that many of its parameter elements, when several ops
           of the layer each use their own, as a stack of recurrent layers).
    reads: which tensors it reads: None, the previous op's output (the first op: the layer's
           inputs); else a tuple of earlier ops' positions in the layer, INPUT (the layer's
           inputs) and layer_input(k) (its k-th). An op's output is freed after the last op that reads it.
    rereads: it also reads the layer's first input, besides the previous op's output.
    scratch: tensors of its output's size that its backward formula computes on the way to the
           gradients (abs: grad * x.sgn()), alive while they are allocated.
    lingers: how many of the layer's following ops still find its output referenced (a Python
           variable that is reassigned only after them), so it is not freed before they allocate.
    temporaries: tensors its backward allocates besides the gradients (a fused kernel's gradients
           of a state nobody trains), alive until its backward ends.
    releases: its backward runs step by step and frees what each step saved as it goes (a
           recurrence unrolled by autograd): (first, before): the first ``first`` tensors of
           ``saves`` are freed before the weights' gradients (by the first step), those up to
           ``before`` before its temporaries (the steps run before they peak); the rest before the
           gradients of its inputs. None: all of them once its backward ends.
    unbatched: its output is ``output`` elements in all, whatever the batch (the causal mask).
    batch_copy: a copy PyTorch makes only for a batch of more than one sample (.contiguous()
           after moving the batch axis inward: a batch of one is already contiguous); a view then
           (and so of a gradient, copies_gradient).
    strided: a view whose output is not contiguous for a batch of more than one sample (a
           recurrent layer's time-major result seen batch-first).
    permuted: a view in another order of the axes (a permute's dims, no batch axis): not
           contiguous at any batch, unless it puts back an earlier permute's order.
    contiguous: it reshapes what it reads (a matrix product over a sequence): a strided input
           is copied first, and the copy is what it saves.
    when_copied: it runs only when an earlier op of the layer copied a strided input (F.linear
           then adds its bias in an op of its own).
    when_strided: it runs only when the layer's input is strided (permuted): a copy that makes
           the result of element-wise ops on it contiguous.
    macs: its multiply-accumulates per sample, where a layer's are spread over several ops (the
           attention's output projection): what a checkpointed segment's rerun leaves out when it
           stops before this op (0: the layer's first op, or none).
    keeps_weights: autograd keeps its weights (under autocast, their 16-bit copies) until its
           backward ends; false: not that long (a recurrence of three steps or fewer, whose copy
           the second step's backward frees, before the steps' weight gradients are summed).
    float32_gradients: under autocast its backward kernel returns its input's and weights'
           gradients in float32 (oneDNN's LSTM): its first ``float32_gradients`` temporaries, the
           input's first, which the engine casts to the 16-bit inputs' dtype one after the other.
    product: a matrix product (mm, addmm): autograd keeps its weights (under autocast, their
           16-bit copies) only to compute its input's gradient, not when its input needs none.
    dtype: its output's: ACTIVATION (what it computes in: autocast's list, else the widest floating
           tensor it reads), LOWER (16 bits under autocast whatever else it reads: a recurrent step
           whose sum of 16-bit products is its new state; the network's dtype without), OPMATH or
           NONE (no tensor).
    cast: its output's dtype instead when autocast casts a state wider than 16 bits for the layer
           (as Tensor.cast; an op that reads nothing: when the layer's input is).
    converts: it is Tensor.to(dtype): a view of what it reads when that is in ``dtype`` already, else
           a copy in ``dtype`` (``output`` elements of it: a part of what it reads may be converted),
           whose backward converts the gradient back (a new tensor of ``output`` elements in the
           dtype of what it read).
    bias: of its (numeric) weights, the elements of a bias: autocast casts it apart from the weight
           (a copy of its own), and a product keeps only the weight's copy.
    uncached: autocast casts its weights at each use, not once into its cache: they are slices of
           a parameter (no leaf), gone after the op unless it saves them.
    autocast: under mixed precision, LOWER (torch.autocast runs it in 16 bits: matrix products,
           convolutions; it casts what it reads, its parameters included), FLOAT32 (autocast
           runs it in float32), PRODUCT (a recurrent step: its product with the weights runs in 16
           bits, on autocast's weight copies, its element-wise rest in the dtype of what it reads:
           autocast casts none of them), or "" (it runs in the dtype of what it reads).
    gradient_layout: how the new gradients its backward passes to what it reads lie (PLAIN,
           CHANNELS_LAST); "": as what it reads is laid out (a permute's: permuted, see permuted).
    copies_gradient: the layouts of its output's gradient that its backward first copies into a
           new contiguous tensor of the output's size (grad.contiguous(); a reshape that cannot view).
    copied_weight: elements of its weight's gradient that AccumulateGrad copies into the
           parameter's layout once the gradient is complete (a convolution over a map laid out
           channels last computes it channels last), freeing the one it computed.
    if_channels_first: the ops PyTorch runs instead of this one when the layer's input is laid
           out channels first in memory (Layer.channels_last is false for it): an op over a
           map's channels moved last then reads a non-contiguous tensor.
    if_channels_last: the ops PyTorch runs instead when the layer's input is laid out channels
           last (a reshape of it to the plain order copies).
    """

    output: int | None
    part: bool = False
    extras: tuple = ()
    saves: tuple = ()
    gradient: str = "new"
    weights: bool | int = False
    reads: tuple | None = None
    rereads: bool = False    # also reads the layer's first input (x / f(x) in local response norm)
    scratch: int = 0         # output-sized temporaries its backward formula makes (abs: sgn(x))
    lingers: int = 0
    temporaries: tuple = ()
    releases: tuple[int, int] | None = None
    unbatched: bool = False
    batch_copy: bool = False
    strided: bool = False
    permuted: tuple = ()
    contiguous: bool = False
    when_copied: bool = False
    when_strided: bool = False
    macs: int = 0
    product: bool = False
    keeps_weights: bool = True
    float32_gradients: int = 0
    dtype: str = ACTIVATION
    cast: str = ""
    converts: bool = False
    bias: int = 0
    uncached: bool = False
    autocast: str = ""
    gradient_layout: str = ""
    copies_gradient: tuple = ()
    copied_weight: int = 0
    if_channels_first: tuple = ()
    if_channels_last: tuple = ()


def view() -> Op:
    """A reshape, flatten or expand: no memory, and its gradient is a view too."""
    return Op(None, gradient="view")


def strides(sizes: tuple[int, ...], order: tuple[int, ...]) -> tuple[int, ...]:
    """The strides of a dense tensor of ``sizes`` whose axes lie in memory in ``order`` (outermost first)."""
    found, step = [0] * len(sizes), 1
    for axis in reversed(order):
        found[axis], step = step, step * sizes[axis]
    return tuple(found)


def contiguous(sizes: tuple[int, ...], steps: tuple[int, ...]) -> bool:
    """Tensor.is_contiguous(): each axis of more than one element steps over all those after it."""
    expected = 1
    for size, step in zip(reversed(sizes), reversed(steps)):
        if size != 1:
            if step != expected:
                return False
            expected *= size
    return True


def suggests_channels_last(sizes: tuple[int, ...], steps: tuple[int, ...]) -> bool:
    """Whether PyTorch's suggest_memory_format reads a 4-D or 5-D tensor as channels last
    (c10's is_channels_last_strides_2d/3d: the channels innermost, then the spatial axes from the
    last, then the batch; an axis of one element ambiguous, and then read as contiguous)."""
    if len(sizes) not in (4, 5) or steps[1] == 0:
        return False
    least = 0
    for axis in (1, *range(len(sizes) - 1, 1, -1), 0):
        if sizes[axis] == 0 or steps[axis] < least or axis == 0 and least == steps[1]:
            return False
        least = steps[axis] * sizes[axis] if sizes[axis] > 1 else steps[axis]
    return True
