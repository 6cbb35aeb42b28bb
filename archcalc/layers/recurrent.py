"""Recurrent layers and their sequence helpers: rnn, lstm, gru, embedding, repeatvector.

The course's vanilla RNN: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b), y_t = softmax(W_hy h_t)
(W_hy is a separate `dense` applied per step). Bias conventions differ between sources, so a
recurrent layer says which one it uses:
- ``bias: true`` (default): PyTorch's two vectors per gate, b_ih and b_hh;
- ``bias: single``: one vector per gate, as in the course and Karpathy's min-char-rnn;
- ``bias: false``: none.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, boolean, choice, positive_int
from .base import Layer, register, shape_text
from .footprint import (
    ACTIVATION,
    FLOAT32,
    INPUT,
    LOWER,
    MAX_OPS,
    NONE,
    OUTPUT,
    PRODUCT,
    Op,
    Region,
    Tensor,
    Workspace,
    layer_input,
    read,
    too_many_ops,
)
from .recipe import module, options
from .shapes import Shape, Steps, Vector
from .terms import Count, Counts, Product, Recurrence, Sum


def bias_form(value):
    """true (PyTorch: b_ih and b_hh), single (one bias, the course's form) or false."""
    if value in (True, False, "single"):
        return value
    raise SpecError(f"must be true (two bias vectors, as PyTorch), single (one, as the course) or false; "
                    f"got {value!r}")


class _Lifetimes:
    """Ops in execution order and, for those whose last reference C++ drops later than their
    last reader, the op after which it goes (``Op.lingers``)."""

    def __init__(self, ops: list[Op]):
        self.ops = ops
        self.ends: dict[int, int] = {}

    def add(self, op: Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def free(self, *positions: int | str) -> None:
        """Those ops' outputs are freed after the latest op (a layer input is not the layer's to free)."""
        self.ends.update((position, len(self.ops) - 1) for position in positions if isinstance(position, int))

    def lifetimes(self) -> tuple:
        return tuple(dataclasses.replace(op, lingers=self.ends[position] - position) if position in self.ends else op
                     for position, op in enumerate(self.ops))


NAMED = 100_000   # layers x directions of a stack whose tensors ``tensors`` names (4 each: 400,000 names)


@dataclass(frozen=True, kw_only=True)
class Recurrent(Layer):
    """A stack of recurrent layers over a sequence [T, F].

    Per layer and direction: params = G * (H*in + H*H) + G*2H (bias: true) | G*H (single) | 0,
    with G gates (rnn 1, gru 3, lstm 4), in = F for the first layer and H*directions after.
    Neurons: the hidden states of the unrolled sequence, T * H * directions * layers.
    An optional second input sets the initial hidden state h_0 (shape [H]), as a decoder
    starts from its encoder's last state.
    """

    memory_gap = ("on CUDA, cuDNN's kernels and reserve space are not modelled (PyTorch's own cells stand in, "
                  "unverified: no GPU measured); with bias: single, the zero second biases PyTorch's model holds "
                  "(G x H per layer and direction) are left out")
    mixed_precision_gap = ("under autocast, a sequence of three steps or fewer whose initial state needs a gradient "
                           "(given by a layer with weights): the 16-bit copy of W_hh is left out of the backward's "
                           "peak, where PyTorch still holds it; a gru of several layers: the lower layers' float32 "
                           "states outlive what is modelled (forward up to 5% under: two layers both ways, 10 steps)")

    hidden: int = arg(positive_int, doc="hidden size H", known_as=("hidden_size", "units"))
    layers: int = arg(positive_int, 1, "stacked recurrent layers", known_as=("num_layers",))
    bidirectional: bool = arg(boolean, False, "also read the sequence backwards")
    returns: str = arg(choice("sequence", "last"), "sequence",
                       "sequence: every step's output [T, H] (N-to-N); last: the final one [H] (N-to-1)")
    bias: bool | str = arg(bias_form, True, "true (PyTorch: b_ih + b_hh), single (course) or false")

    main = "hidden"
    merges = True  # (sequence,) or (sequence, initial hidden state)
    gates: ClassVar[int] = 1
    torch_class: ClassVar[str]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _sequence(self, x: tuple) -> Steps:
        sequence = x[0]
        if not isinstance(sequence, Steps):
            raise SpecError(f"{self.kind} reads a sequence, but its input is {shape_text(sequence)}",
                            hint="declare the input as {steps: T, features: F}, or turn a vector into a "
                                 "sequence with '- repeatvector: T'", field="inputs")
        if len(sequence) < 2:
            raise SpecError(f"{self.kind} needs vectors at each step, but its input is token ids "
                            f"{shape_text(sequence)}", hint="add '- embedding: {vocabulary: V, dim: E}' first")
        if len(x) > 2:
            raise SpecError(f"{self.kind} reads a sequence and at most an initial state, got {len(x)} inputs",
                            field="inputs")
        if len(x) == 2 and x[1] != Vector((self.hidden,)):
            raise SpecError(f"the initial state of {self.kind} must have the hidden size [{self.hidden}], "
                            f"got {shape_text(x[1])}", field="inputs",
                            hint=f"project it first with '- dense: {self.hidden}'")
        return sequence

    def output_shape(self, x: tuple) -> Shape:
        sequence = self._sequence(x)
        width = self.hidden * self.directions
        return sequence.like((sequence.steps, width)) if self.returns == "sequence" else Vector((width,))

    @property
    def bias_vectors(self) -> int:
        """Bias vectors per gate: 2 (PyTorch), 1 (single) or 0."""
        return {True: 2, "single": 1, False: 0}[self.bias]

    def params(self, x: tuple) -> int:
        """Per gate and direction: H x in + H x H + biases x H, where in = F for the first layer
        and H x directions for each of the layers above (in closed form: 10^9 layers count at once)."""
        def per_gate(width_in: int) -> int:
            return self.hidden * width_in + self.hidden * self.hidden + self.bias_vectors * self.hidden
        features = self._sequence(x)[1]
        return self.gates * self.directions * (per_gate(features)
                                               + (self.layers - 1) * per_gate(self.hidden * self.directions))

    def parameter_shapes(self, x: tuple) -> tuple:
        """Per layer and direction: weight_ih [G*H, in], weight_hh [G*H, H], and bias_ih, bias_hh
        [G*H] (bias: single keeps bias_ih only), in = F for the first layer and H*directions above
        (in closed form, as ``params``: ``tensors`` names every layer's)."""
        rows, features = self.gates * self.hidden, self._sequence(x)[1]
        above = self.layers - 1
        shapes = [((rows, features), self.directions), ((rows, self.hidden), self.directions * self.layers),
                  ((rows,), self.directions * self.layers * self.bias_vectors)]
        if above:
            shapes.insert(1, ((rows, self.hidden * self.directions), self.directions * above))
        return tuple((shape, count) for shape, count in shapes if count)

    def tensors(self, x: tuple) -> dict:
        """PyTorch's names and shapes, per layer l and direction: weight_ih_l{l} G*H x in,
        weight_hh_l{l} G*H x H, bias_ih_l{l} and bias_hh_l{l} G*H (only bias_ih with a single
        bias), '_reverse' for the backward direction. (``params`` keeps its closed form: this
        lists every layer, and is asked only of a layer that shares or freezes tensors, and of the
        memory schedule: a stack of more than NAMED layers x directions is refused.)"""
        if self.layers * self.directions > NAMED:
            raise SpecError(f"its {self.layers:,} layers x {self.directions} direction"
                            f"{'s' * (self.directions > 1)} hold more tensors than archcalc names one by one "
                            f"(at most {NAMED:,} layers x directions)", field="layers",
                            hint="freeze and shares name a stack's tensors one by one: leave them out for this "
                                 "stack, or stack fewer layers")
        found = {}
        rows, features = self.gates * self.hidden, self._sequence(x)[1]
        biases = ("bias_ih", "bias_hh")[:self.bias_vectors]
        for layer in range(self.layers):
            width = features if layer == 0 else self.hidden * self.directions
            for suffix in ("", "_reverse")[:self.directions]:
                found[f"weight_ih_l{layer}{suffix}"] = (rows, width)
                found[f"weight_hh_l{layer}{suffix}"] = (rows, self.hidden)
                found.update((f"{name}_l{layer}{suffix}", (rows,)) for name in biases)
        return found

    def _bias_params(self) -> int:
        return self.layers * self.directions * self.gates * self.bias_vectors * self.hidden

    def macs(self, x: tuple, y: Shape) -> int:
        """Every step multiplies every weight matrix once: T x (params - biases)."""
        return self._sequence(x).steps * (self.params(x) - self._bias_params())

    def extra_flops(self, x: tuple, y: Shape) -> int:
        """One add per bias per step. The gates' element-wise arithmetic (sigmoid, tanh, the
        products of an LSTM's cell update) is not counted."""
        return self._sequence(x).steps * self._bias_params()

    def neurons(self, x: tuple, y: Shape) -> int:
        return self._sequence(x).steps * self.hidden * self.directions * self.layers

    def count_terms(self, x: tuple, y: Shape) -> Counts:
        """params per layer: [directions x] [gates x] (H x in + H x H + biases x H), with in = F for
        the first layer and H x directions for the (layers - 1) above it; neurons: the hidden
        states of the unrolled network, T x H (x directions x layers)."""
        features, h = self._sequence(x)[1], self.hidden
        bias = {2: (Product((2, h)),), 1: (h,), 0: ()}[self.bias_vectors]
        factors = tuple(n for n in (self.directions, self.gates) if n > 1)
        first, above = (Sum((Product((h, width_in)), Product((h, h)), *bias))
                        for width_in in (features, h * self.directions))
        layers = [Product((*factors, first))]
        if self.layers > 1:  # layers 2 to n alike: their input is the H x directions below
            layers.append(Product(((self.layers - 1,) if self.layers > 2 else ()) + (*factors, above)))
        neurons = (self._sequence(x).steps, h) + tuple(n for n in (self.directions, self.layers) if n > 1)
        return dataclasses.replace(super().count_terms(x, y), params=Count(self.params(x), Sum(tuple(layers))),
                                   neurons=Count(self.neurons(x, y), Product(neurons)))

    def to_torch(self, x: tuple):
        """nn.RNN/LSTM/GRU (batch first) in the Recurrent helper, which picks the returned value
        and takes the optional initial state; ``bias: single`` drops PyTorch's second bias."""
        cell = module(self.torch_class, self._sequence(x)[1], self.hidden,
                      **options(num_layers=(self.layers, 1), bias=(bool(self.bias), True),
                                batch_first=(True, False), bidirectional=(self.bidirectional, False),
                                **self.torch_options()))
        if self.bias == "single":
            cell = module("single_bias", cell)
        return module("Recurrent", cell, **options(last=(self.returns == "last", False)))

    def torch_options(self) -> dict:
        return {}

    def memory_ops(self, x: tuple, y: Shape, training: bool, device: str) -> tuple:
        """The module as PyTorch runs it on the CPU (aten/src/ATen/native/RNN.cpp and mkldnn/RNN.cpp),
        time-major: the initial states (zeros, or the given one copied to every layer and
        direction), then per layer and direction either oneDNN's fused layer (LSTM in float32)
        or PyTorch's own cell step by step; two directions joined by a concatenation; the final
        states stacked (unread when the sequence is returned; with ``returns: last`` the top
        layer's read). Inference: ``_inference_ops``; a training step: ``_training_ops``."""
        sequence = self._sequence(x)
        if not training:
            return self._inference_ops(sequence, len(x) == 2, device)
        return self._training_ops(sequence, len(x) == 2, device)

    def _bounded(self, ops: list[Op], layer: int) -> None:
        """Refuses the stack, before ``layer`` is listed, once the ops listed so far and one for each
        layer and direction still to come pass footprint.MAX_OPS (a stack of 2^63 layers is refused
        before its first layer, none ever lists more than MAX_OPS)."""
        if len(ops) + (self.layers - layer) * self.directions > MAX_OPS:
            raise too_many_ops(f"this {self.kind}'s {self.layers:,} layers x {self.directions} "
                               f"direction{'s' * (self.directions > 1)} run more", "layers")

    def _initial_states(self, given: bool) -> list[Op]:
        """h_0 (and an LSTM's c_0): zeros of [layers x directions, N, H], or the given state
        expanded to every layer and direction with .contiguous() (a copy unless there is one
        layer and direction) and zeros of its shape for c_0."""
        stacked = self.layers * self.directions * self.hidden
        many = self.layers * self.directions > 1
        ops = [Op(stacked if many else None, reads=(layer_input(1),)) if given else Op(stacked, reads=())]
        if self.gates == 4:
            ops.append(Op(stacked, reads=()))
        return ops

    # inference, PyTorch's own cells: what the last step holds at its peak besides the hidden
    # states it keeps (h; an LSTM's h and c), per sample in units of H: rnn the product before
    # tanh (or relu); gru the hidden side's three gates and the new gate; lstm the four gates,
    # tanh(c) and (after the first step) the previous c
    STEP: ClassVar[dict[int, int]] = {1: 1, 3: 4, 4: 5}

    def _inference_ops(self, sequence: Steps, given: bool, device: str) -> tuple:
        """Inference, every tensor freed where ATen's C++ drops its last reference (measured
        byte for byte with backend/memtrack.py: layers 1-3, both directions, every bias form,
        both returns): oneDNN's LSTM (``_onednn_inference``) or PyTorch's own cells
        (``_native_inference``), then the final states stacked (h; an LSTM's c too); the zeros
        the module makes die with its forward, a given initial state's copy with the caller's;
        ``returns: last`` concatenates the top layer's final h of each direction while the
        module's results are still referenced."""
        run = _Lifetimes(self._initial_states(given))
        states = tuple(range(len(run.ops)))
        if self.gates == 4 and device == "cpu":
            output, stacks = self._onednn_inference(run, sequence)
        else:
            output, stacks = self._native_inference(run, sequence, states)
        if not given:
            run.free(*states)
        if self.returns == "last":
            run.add(Op(self.directions * self.hidden, reads=(stacks[0],)))
            run.free(output, *stacks)
        else:
            run.free(*stacks)
            run.add(Op(None, reads=(output,), strided=sequence.steps > 1))   # batch-first: a strided view
        if given:
            run.free(*states)
        return run.lifetimes()

    def _onednn_inference(self, run: _Lifetimes, sequence: Steps) -> tuple[int, list[int]]:
        """oneDNN's LSTM (mkldnn_rnn): the sequence made time-major by .contiguous() (a copy for
        several samples and steps), kept until it returns; per layer and direction
        mkldnn_rnn_layer's output and final h and c (with what it is passed, ``_onednn_arguments``;
        under autocast its input cast to 16 bits), each output kept until the next layer's output of that
        direction replaces it, the final states until they are stacked; two directions
        concatenated, kept until the next layer's concatenation. (The output's position, the
        stacked h and c's.)"""
        steps, h = sequence.steps, self.hidden
        copied: int | str = (run.add(Op(steps * sequence[1], reads=(layer_input(0),), batch_copy=True)) if steps > 1
                             else layer_input(0))
        below = copied
        outputs: list[int] = []
        finals: list[int] = []
        joined: int | None = None
        for layer in range(self.layers):
            self._bounded(run.ops, layer)
            width = sequence[1] if layer == 0 else h * self.directions
            for direction in range(self.directions):
                cast = run.add(Op(None, reads=(below,), lingers=2, autocast=LOWER))   # autocast's, until it returns
                output = run.add(Op(steps * h, reads=(cast,), weights=sum(self._weights(width)), dtype=LOWER,
                                    autocast=PRODUCT))
                finals.append(run.add(Op(2 * h, reads=(output,), extras=sum(self._onednn_arguments(width), ()))))
                if layer:
                    run.free(outputs[direction])
                    outputs[direction] = output
                else:
                    outputs.append(output)
            if self.directions == 2:
                below = run.add(Op(steps * 2 * h, reads=tuple(outputs)))
                if joined is not None:
                    run.free(joined)   # once the new concatenation replaces it
                joined = below
            else:
                below = outputs[0]
        stacks = [run.add(Op(len(finals) * h, reads=tuple(finals))) for _ in range(2)]
        run.free(*finals, *(outputs if self.directions == 2 else ()), copied)
        return outputs[0] if joined is None else joined, stacks

    def _native_inference(self, run: _Lifetimes, sequence: Steps, states: tuple) -> tuple[int, list[int]]:
        """PyTorch's own cells (rnn, gru; an LSTM off the CPU), per layer and direction: x W_ihᵀ
        + b_ih for every step at once (the first layer's batch-first input is copied by matmul,
        multiplied, then the bias added in a new tensor; a contiguous input gets one addmm), the
        steps (each keeps its h; ``STEP`` transient at the last), torch.stack of the hidden
        states; the projection and the steps freed when the layer returns, but the last step's
        state (h; an LSTM's h and c), kept until the final states are stacked. Two directions:
        the second projection replaces the first once it is made, and both directions' stacks
        and steps live until their concatenation. Each layer's output is freed when the next
        one returns. (The output's position, the stacked final states'.)"""
        steps, h, g = sequence.steps, self.hidden, self.gates
        below: int | str = layer_input(0)
        finals: list[int] = []
        for layer in range(self.layers):
            self._bounded(run.ops, layer)
            width = sequence[1] if layer == 0 else h * self.directions
            w_ih, w_hh, b_ih = self._weights(width)
            kept: list[int] = []   # the projection and steps of each direction, freed at the return
            stacked: list[int] = []
            for direction in range(self.directions):
                if layer == 0 and steps > 1:   # matmul copies the batch-first input (a view for one sample)
                    copy = run.add(Op(steps * width, reads=(below,), batch_copy=True))
                    projection = run.add(Op(steps * g * h, reads=(copy,), weights=w_ih + b_ih, autocast=LOWER))
                    if self.bias:   # added in a new tensor (for one sample addmm adds it: a view)
                        projection = run.add(Op(steps * g * h, reads=(projection,), batch_copy=True))
                else:
                    projection = run.add(Op(steps * g * h, reads=(below,), weights=w_ih + b_ih, autocast=LOWER))
                if direction:
                    run.free(kept.pop(0))
                kept.append(projection)
                # a gated cell mixes h_t-1 (or c_t-1) into h_t: under autocast the steps take the initial
                # state's dtype; an Elman cell's h is an activation of 16-bit products
                mixed = (projection, *(states if g > 1 else ()))
                earlier = [run.add(Op((steps - 1) * h, reads=mixed))] if steps > 1 else []
                transient = self.STEP[g] + (g == 4 and steps > 1)
                finals.append(run.add(Op((1 + (g == 4)) * h, reads=mixed, extras=(Tensor(transient * h),),
                                         weights=w_hh, autocast=PRODUCT)))
                stacked.append(run.add(Op(steps * h, reads=(*earlier, finals[-1]))))
                kept += earlier
            output = stacked[0]
            if self.directions == 2:
                output = run.add(Op(steps * 2 * h, reads=tuple(stacked)))
                kept += stacked
            run.free(*kept, below)
            below = output
        stacks = [run.add(Op(len(finals) * h, reads=tuple(finals))) for _ in range(1 + (g == 4))]
        run.free(*finals)
        return output, stacks

    def _training_ops(self, sequence: Steps, given: bool, device: str) -> tuple:
        """A training step: as ``memory_ops``, with the sequence copied time-major (one copy
        read by oneDNN's directions, one per direction for PyTorch's cells), what autograd
        keeps (``_onednn_layer``, ``_native_layer``) and the lifetimes of ``_lifetimes``."""
        steps, h, lstm = sequence.steps, self.hidden, self.gates == 4
        stacked = self.layers * self.directions * h   # per sample: one state per layer and direction
        ops = self._initial_states(given)
        states = tuple(range(len(ops)))
        onednn = lstm and device == "cpu"
        below: int | None = None   # the op whose output the next layer reads; None: the sequence
        tops: list[int] = []
        for layer in range(self.layers):
            self._bounded(ops, layer)
            width, tops, copy = (sequence[1] if layer == 0 else h * self.directions), [], None
            for _ in range(self.directions):
                source = below
                if source is None and steps > 1:   # the sequence made time-major: one copy, native per direction
                    if copy is None or not onednn:
                        ops.append(Op(steps * width, reads=(layer_input(0),), gradient="view", batch_copy=True))
                        copy = len(ops) - 1
                    source = copy
                last = layer == self.layers - 1 and self.returns == "last"   # (oneDNN: read through h)
                if onednn:
                    ops += self._onednn_layer(steps, width, source, len(ops), states, last)
                    tops.append(len(ops) - 1)
                else:
                    ops += self._native_layer(steps, width, source, len(ops), states)
                    tops.append(len(ops) - 1)
            if self.directions == 2:   # torch.cat of the directions (unread with returns: last)
                ops.append(Op(steps * 2 * h, reads=tuple(tops), gradient="view"))
                below = len(ops) - 1
            else:
                below = tops[0]
        state = LOWER if onednn else self.STATE[self.gates]   # the final states' dtype: their steps'
        if self.returns == "last":   # the final states stacked (native: its steps' op holds the last h)
            ops.append(Op(stacked, reads=tuple(top - 2 * (not onednn) for top in tops)))
            if lstm:
                ops.append(Op(stacked, reads=(), lingers=1, dtype=state))
            ops.append(Op(self.directions * h, reads=(len(ops) - 1 - lstm,), gradient="view"))
            return self._lifetimes(ops, states)
        ops.append(Op(stacked, reads=(), lingers=1 + lstm, dtype=state))   # the final states, unread
        if lstm:
            ops.append(Op(stacked, reads=(), lingers=1, dtype=state))
        ops.append(Op(None, reads=(below,), gradient="view", strided=steps > 1))   # batch-first: a strided view
        return self._lifetimes(ops, states)

    @staticmethod
    def _lifetimes(ops: list[Op], kept: tuple) -> tuple:
        """``ops`` with those at ``kept`` (the initial states) referenced until the module returns, and each native
        layer's input projection and hidden states until the next one's steps begin (the last
        one's through the concatenation of its directions): PyTorch's layer objects hold them
        that long (measured); so are the steps' states nobody saves (``_native_layer``)."""
        ends = {position: len(ops) - 1 for position in kept}
        steps = [position for position, op in enumerate(ops) if op.releases is not None]
        for index, position in enumerate(steps):
            stack = position + 2   # after the steps and their unsaved states
            joined = stack + 1 < len(ops) and {position, stack} & set(ops[stack + 1].reads or ())
            end = steps[index + 1] - 1 if index + 1 < len(steps) else stack + bool(joined)
            ends[position - 2] = ends[position] = ends[position + 1] = end   # the projection (after unbind), the steps
        return tuple(dataclasses.replace(op, lingers=ends[position] - position) if position in ends else op
                     for position, op in enumerate(ops))

    def _weights(self, width: int) -> tuple[int, int, int]:
        """Trainable parameter elements of one layer and direction: (W_ih, W_hh with b_hh, b_ih)."""
        rows = self.gates * self.hidden
        return rows * width, rows * self.hidden + (rows if self.bias is True else 0), rows if self.bias else 0

    def _onednn_arguments(self, width: int) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """What mkldnn_rnn_layer is passed besides the input and the weights, per layer and direction:
        (kept by autograd in training, alive only while it runs): under autocast the 16-bit copies
        of h_0 and c_0; without a bias, zeros of the two weights' shapes (PyTorch's, in float32),
        under autocast with their 16-bit copies (kept instead of them); with ``bias: single`` the
        zero second bias's 16-bit copy (a buffer: autocast does not cache it)."""
        h, zeros = self.hidden, 0 if self.bias else 4 * self.hidden * (self.hidden + width)
        kept = [Tensor(h, NONE, cast=LOWER), Tensor(h, NONE, cast=LOWER)]
        if zeros:
            kept += [Tensor(zeros, ACTIVATION, False, NONE), Tensor(zeros, NONE, False, LOWER)]
        if self.bias == "single":
            kept.append(Tensor(4 * h, NONE, False, LOWER))
        return tuple(kept), (Tensor(zeros, NONE, False, FLOAT32),) if zeros else ()

    def _onednn_layer(self, steps: int, width: int, source: int | None, start: int, states: tuple,
                      last: bool) -> list[Op]:
        """oneDNN's LSTM layer in training (mkldnn_rnn_layer; ``start``: its first op's position): its
        input cast to 16 bits under autocast, then the output sequence, the final h and c, and
        its workspace (oneDNN's rnn_utils, per sample, footprint.Region: the gates T x ld(4H),
        the cell outputs T x ld(H), the states (T + 1) x 2 x ld(max(in, H)), the cell states
        (T + 1) x 2 x H, in the layer's dtype (16 bits under autocast), and the two gradients of
        the states and the one of the cell states in float32, each region on a page of 4096
        bytes), with what it is passed (``_onednn_arguments``). Autograd keeps all it reads (under
        autocast: their 16-bit copies) and returns; its backward makes the gradients of the
        input, of the four weights and of the initial h and c at once, in float32, and the engine
        casts each to its 16-bit input's dtype. ``last``: the top layer of ``returns: last``,
        whose gradient arrives through its final h."""
        h = self.hidden
        w_ih, w_hh, b_ih = self._weights(width)
        rows = 2 * (steps + 1)   # the states of the input and output layers at each step and before the first
        regions = (Region(steps, 4 * h, LOWER), Region(steps, h, LOWER), Region(rows, max(width, h), LOWER),
                   Region(rows, h, LOWER, padded=False), *(Region(rows, max(width, h), FLOAT32) for _ in range(2)),
                   Region(rows, h, FLOAT32, padded=False))
        kept, passed = self._onednn_arguments(width)
        extras = (Tensor(steps * h if last else h, LOWER), Tensor(h, LOWER),   # (the sequence or h), c
                  Workspace(regions), *kept, *passed)
        untrained = (2 - self.bias_vectors) * 4 * h   # bias gradients it makes that nobody trains
        gates = 4 * h   # the kernel's float32 gradients of the input and of each trained weight, in its order
        trained = (gates * width, gates * h, *((gates,) if self.bias else ()), *((gates,) if self.bias is True else ()))
        float32 = (Tensor(steps * width, NONE, autocast=FLOAT32),
                   *(Tensor(elements, NONE, False, FLOAT32) for elements in trained))
        return [Op(None, reads=(layer_input(0) if source is None else source,), gradient="view", autocast=LOWER),
                Op(h if last else steps * h, reads=(start, *states), extras=extras, dtype=LOWER,
                   saves=(INPUT, OUTPUT, *range(len(extras) - len(passed))), weights=w_ih + w_hh + b_ih,
                   temporaries=(*float32, Tensor(h, autocast=FLOAT32), Tensor(h, autocast=FLOAT32),
                                *((Tensor(untrained, batched=False, autocast=FLOAT32),) if untrained else ())),
                   float32_gradients=len(float32), autocast=PRODUCT)]

    # per step of PyTorch's own cells in training, what autograd keeps, in units of H per sample by
    # (dtype, dtype under autocast when it differs): rnn h (the tanh of 16-bit products); gru the
    # hidden gates' product (3H) and two of n's terms in 16 bits, h - n, and the state the next
    # step's product saves (h itself; under autocast its 16-bit copy, h then freed once stacked:
    # ``_native_layer``); lstm the gates (4H), c, tanh(c), h
    KEPT: ClassVar[dict[int, dict[tuple[str, str], int]]] = {
        1: {(LOWER, ""): 1}, 3: {(LOWER, ""): 5, (ACTIVATION, ""): 1, (ACTIVATION, NONE): 1, (NONE, LOWER): 1},
        4: {(ACTIVATION, ""): 7}}
    STATE: ClassVar[dict[int, str]] = {1: LOWER, 3: ACTIVATION, 4: ACTIVATION}   # a step's h
    # the backward's peak, at its second step: W_hh's gradient from this step, the sum of the
    # earlier ones and their new sum (3 x G*H x H, one of them kept as .grad; in 16 bits under
    # autocast, cast to the float32 .grad at the end), while (rnn) one step's gradient of h is also
    # alive, or (gru, lstm) what the first steps saved is already freed (measured: (freed first,
    # alive) per sample, in units of H by dtype)
    ACCUMULATING: ClassVar[dict[int, tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]]] = {
        1: ({}, {(LOWER, ""): 1}), 3: ({(LOWER, ""): 6, (ACTIVATION, ""): 1, (ACTIVATION, NONE): 1}, {}),
        4: ({(ACTIVATION, ""): 8}, {})}
    # what the first step frees before its W_hh gradient, per sample in units of H by dtype (gru:
    # two of its terms' products)
    RELEASED: ClassVar[dict[int, dict[tuple[str, str], int]]] = {1: {}, 3: {(LOWER, ""): 2},
                                                                4: {(ACTIVATION, ""): 2}}

    def _native_layer(self, steps: int, width: int, source: int | None, start: int, states: tuple) -> list[Op]:
        """PyTorch's own recurrence for one layer and direction in training (``start``: its first op's
        position): x W_ihᵀ for every step at once (mm, then + b_ih in a new tensor, kept until
        the steps are stacked), the cells step by step, autograd keeping ``KEPT`` per step (its op
        outputs the last h, which ``returns: last`` reads, the rest as extras; an Elman cell's
        first step also the 16-bit copy of the initial state under autocast, later states are
        16-bit already), then torch.stack of the hidden states. Its backward runs the steps
        in reverse, freeing each step's tensors as it goes, while the steps' gradients of the
        input projection wait for the stack that joins them (unbind's backward) and the
        recurrent weights' gradients are summed step by step out of place."""
        h, g = self.hidden, self.gates
        w_ih, w_hh, b_ih = self._weights(width)
        added = b_ih and steps > 1   # one step: addmm adds the bias in the product
        ops = [Op(steps * g * h, reads=(layer_input(0) if source is None else source,), saves=(INPUT,),
                  weights=w_ih if added else w_ih + b_ih, product=True, autocast=LOWER)]
        if added:
            ops.append(Op(steps * g * h, gradient="view", weights=b_ih))
        ops.append(Op(None, gradient="new"))   # unbind: its backward stacks the steps' gradients
        kept = Counter({dtypes: steps * units for dtypes, units in self.KEPT[g].items()})
        kept[(self.STATE[g], NONE if g == 3 else "")] -= 1   # the last h: the op's output
        kept[(NONE, LOWER)] += g == 1   # the initial state's 16-bit copy (an Elman cell's h is 16-bit after it)
        first = Counter(self.RELEASED[g])
        freed, alive = (Counter(self.ACCUMULATING[g][0]), self.ACCUMULATING[g][1]) if steps > 1 else (first, {})
        parts = [tuple(Tensor(units * h, dtype, cast=cast) for (dtype, cast), units in part.items() if units > 0)
                 for part in (first, freed - first, kept - freed)]
        released = (len(parts[0]), len(parts[0]) + len(parts[1]))
        ops.append(Op(h, reads=(start + len(ops) - 1, *states), extras=(*parts[0], *parts[1], *parts[2]),
                      saves=(*range(released[1]), OUTPUT, *(read(1 + k) for k in range(len(states))),
                             *range(released[1], released[1] + len(parts[2]))),
                      weights=w_hh, releases=released, dtype=self.STATE[g], autocast=PRODUCT, keeps_weights=steps > 3,
                      temporaries=(Tensor(2 * g * h * h, LOWER, batched=False),
                                   *(Tensor(units * h, dtype, cast=cast) for (dtype, cast), units in alive.items()))
                      if steps > 1 else ()))
        # a gated cell's earlier states where the next step's product saved their 16-bit copies: nobody
        # saves them, held as long as the projection (_lifetimes)
        ops.append(Op((steps - 1) * h, reads=(), dtype=NONE, cast=ACTIVATION if g == 3 else ""))
        ops.append(Op(steps * h, reads=(start + len(ops) - 2,), gradient="view"))   # torch.stack of the hidden states
        return ops

    def size_terms(self, x: tuple, y: Shape | None) -> tuple:
        return (Recurrence(self._sequence(x).steps, self.hidden, self.directions, self.layers, self.bias_vectors),)


@register("rnn", known_as=("SimpleRNN",))
@dataclass(frozen=True, kw_only=True)
class RNN(Recurrent):
    """Vanilla RNN (Elman): h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)."""

    nonlinearity: str = arg(choice("tanh", "relu"), "tanh", "tanh or relu")
    torch_class = "nn.RNN"

    def torch_options(self) -> dict:
        return {"nonlinearity": (self.nonlinearity, "tanh")}


@register("lstm")
@dataclass(frozen=True, kw_only=True)
class LSTM(Recurrent):
    """Long short-term memory: 4 gates (input, forget, cell, output)."""

    gates = 4
    torch_class = "nn.LSTM"
    memory_gap = (Recurrent.memory_gap + "; in float64, and in a training step under fp16 autocast, PyTorch's own "
                  "cell runs on the CPU: modelled as oneDNN's layer (the schedule does not choose the kernel by dtype)")
    mixed_precision_gap = ("under autocast without a bias, after a layer whose output is already 16-bit: the float32 "
                           "zero biases PyTorch makes while oneDNN's layer runs are not counted")


@register("gru")
@dataclass(frozen=True, kw_only=True)
class GRU(Recurrent):
    """Gated recurrent unit: 3 gates (reset, update, new)."""

    gates = 3
    torch_class = "nn.GRU"


@register("embedding", prefix="embed")
@dataclass(frozen=True, kw_only=True)
class Embedding(Layer):
    """Token ids [T] -> vectors [T, E]: a lookup table, params = V * E.

    Equivalent to a one-hot vector of V times a dense layer without bias.
    """

    vocabulary: int = arg(positive_int, doc="number of distinct tokens V",
                              known_as=("num_embeddings", "input_dim"))
    dim: int = arg(positive_int, doc="vector size E", known_as=("embedding_dim", "output_dim"))

    def output_shape(self, x: Shape) -> Shape:
        if not isinstance(x, Steps) or len(x) != 1:
            raise SpecError(f"embedding reads token ids, declared as {{steps: T}}; got {shape_text(x)}",
                            hint="a one-hot sequence {steps: T, features: V} goes straight to rnn/dense")
        return x.like((x.steps, self.dim))

    def tensors(self, x: Shape) -> dict:
        """weight V x E, the table."""
        return {"weight": (self.vocabulary, self.dim)}

    def lookup_params(self, x: Shape) -> int:
        """The whole table: a token's vector is read, not computed."""
        return self.params(x)

    def to_torch(self, x: Shape):
        return module("nn.Embedding", self.vocabulary, self.dim)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The looked-up vectors; the token ids are kept, and the backward pass allocates the
        table's whole gradient (V x E)."""
        return (Op(prod(y), saves=(INPUT,), weights=True),)

    def sample_input(self, x: Shape, batch: int, dtype, device):
        """Random token ids in [0, vocabulary)."""
        import torch

        return torch.randint(0, self.vocabulary, (batch, *x), device=device)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """One vector of E per token of the vocabulary: V x E."""
        params = Count(self.params(x), Product((self.vocabulary, self.dim)), "a table, V x E")
        return dataclasses.replace(super().count_terms(x, y), params=params)


@register("repeatvector", prefix="repeatvector")
@dataclass(frozen=True, kw_only=True)
class RepeatVector(Layer):
    """A vector [F] fed at each of T steps -> [T, F] (the course's 1-to-N configuration)."""

    steps: int = arg(positive_int, doc="number of steps T", known_as=("n",))
    main = "steps"
    creates_neurons = False

    def output_shape(self, x: Shape) -> Shape:
        if not isinstance(x, Vector):
            raise SpecError(f"repeatvector repeats a flat vector [F], got {shape_text(x)}",
                            hint="flatten or pool the input first")
        return Steps((self.steps, x[0]))

    def to_torch(self, x: Shape):
        return module("RepeatVector", self.steps)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """An expand: a view of the vector, whose gradient is a sum over the steps (a new tensor)."""
        return (Op(None, gradient="new"),)
