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
from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, boolean, choice, positive_int
from .base import Layer, register, shape_text
from .footprint import INPUT, LOWER, OUTPUT, Op
from .recipe import module, options
from .shapes import Shape, Steps, Vector
from .terms import Count, Counts, Product, Recurrence, Sum


def bias_form(value):
    """true (PyTorch: b_ih and b_hh), single (one bias, the course's form) or false."""
    if value in (True, False, "single"):
        return value
    raise SpecError(f"must be true (two bias vectors, as PyTorch), single (one, as the course) or false; "
                    f"got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Recurrent(Layer):
    """A stack of recurrent layers over a sequence [T, F].

    Per layer and direction: params = G * (H*in + H*H) + G*2H (bias: true) | G*H (single) | 0,
    with G gates (rnn 1, gru 3, lstm 4), in = F for the first layer and H*directions after.
    Neurons: the hidden states of the unrolled sequence, T * H * directions * layers.
    An optional second input sets the initial hidden state h_0 (shape [H]), as a decoder
    starts from its encoder's last state.
    """

    memory_gap = ("its kernel's workspace and per-step temporaries (oneDNN's LSTM workspace, GRU's and RNN's "
                  "cells on CPU, cuDNN's reserve on CUDA) are not modelled")

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
        lists every layer, and is asked only of a layer that shares or freezes tensors.)"""
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
        """Approximate: every layer's hidden states over the sequence, kept with the input for
        the backward pass; the kernel's own workspace (oneDNN on CPU, cuDNN's reserve on CUDA)
        is not modelled, nor the gates an LSTM keeps. ``returns: last`` then joins the final states."""
        steps = self._sequence(x).steps
        states = Op(steps * self.hidden * self.directions * self.layers, saves=(INPUT, OUTPUT), weights=True, autocast=LOWER)
        return (states,) if self.returns == "sequence" else (states, Op(self.hidden * self.directions))

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
