"""Multi-head scaled dot-product attention over a sequence [T, d] (ViT, BERT, GPT-2, Llama).

One kind holds the whole layer as the reference implementations write it: the query, key and
value projections, the attention itself, softmax(Q Kᵀ / sqrt(head_dim)) V per head, and the
output projection. Its conventions, stated once here:

- projections: q = x W_q (d -> heads * head_dim), k and v = m W_k, m W_v (the memory's
  features -> kv_heads * head_dim), o = attention W_o (heads * head_dim -> d), each with a bias
  when ``bias``; ``qkv: fused`` holds q, k and v in one matrix, named as nn.MultiheadAttention
  names it (in_proj_weight [(heads + 2 kv_heads) * head_dim, d], in_proj_bias, out_proj.weight,
  out_proj.bias: 2,362,368 for d = 768); ``qkv: separate`` as Llama's (q_proj, k_proj, v_proj,
  o_proj, each .weight and .bias);
- grouped-query attention: ``kv_heads`` < heads (1: multi-query); each key/value head serves
  heads / kv_heads query heads (F.scaled_dot_product_attention's enable_gqa);
- cross-attention: ``inputs: [query, memory]``: keys and values come from the memory [S, d_m],
  the output has the query's T steps; self-attention reads one sequence (S = T, d_m = d);
- MACs: the projections (T*d*heads*hd + 2*S*d_m*kv_heads*hd + T*heads*hd*d) plus the two
  products Q Kᵀ and A V, T*S*head_dim per head each, the full T*S even when ``causal`` (the
  mask does not halve them: PyTorch's FlopCounterMode and torchvision count the full products);
- other FLOPs: one per bias element added; per score (heads*T*S) one for the 1/sqrt(head_dim)
  scale and one for the softmax (as the softmax kind counts); rotary positions 3 per element
  of q and k (two multiplies and an add: q*cos + rotate_half(q)*sin); the causal mask none;
- ``rotary``: Llama's rotary position embedding of base theta on q and k (no parameters), in
  the rotate-half form of Hugging Face's LlamaAttention, over the whole head;
- ``causal``: position t attends to positions <= t (is_causal, aligned top-left when S != T);
- ``dropout``: on the attention weights while training (SDPA's dropout_p).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, boolean, choice, divisors, optional, positive_int, positive_number, probability
from .base import Layer, register, shape_text
from .footprint import INPUT, LOWER, MASK, OPMATH, OUTPUT, Op, Tensor, layer_input, read
from .recipe import module, options
from .shapes import Shape, Steps
from .terms import Attending, Count, Counts, Product, Sum


@register("attention", prefix="attn",
          known_as=("MultiheadAttention", "MultiHeadAttention", "scaled_dot_product_attention", "SelfAttention"))
@dataclass(frozen=True, kw_only=True)
class Attention(Layer):
    """softmax(Q Kᵀ / sqrt(head_dim)) V per head, between q/k/v and output projections:
    [T, d] -> [T, d]; params = d*(heads + 2 kv_heads)*head_dim + heads*head_dim*d (+ biases);
    MACs = the projections + 2 * heads * T * S * head_dim (full T*S, causal or not)."""

    heads: int = arg(positive_int, doc="query heads", known_as=("num_heads", "n_head", "num_attention_heads"))
    kv_heads: int | None = arg(optional(positive_int), None,
                               "key/value heads (grouped-query attention; 1: multi-query); default: heads",
                               known_as=("num_key_value_heads", "n_kv_heads"))
    head_dim: int | None = arg(optional(positive_int), None, "features per head; default: d / heads",
                               known_as=("key_dim", "head_size"))
    bias: bool = arg(boolean, True, "a bias on every projection (Llama: false)", known_as=("use_bias", "add_bias_kv"))
    qkv: str = arg(choice("fused", "separate"), "fused",
                   "fused: one in_proj matrix (nn.MultiheadAttention, GPT-2's c_attn); separate: q_proj, "
                   "k_proj, v_proj (BERT, Llama)")
    causal: bool = arg(boolean, False, "each position attends to itself and earlier ones (decoders)",
                       known_as=("is_causal",))
    dropout: float = arg(probability, 0.0, "dropout on the attention weights while training", known_as=("dropout_p",))
    rotary: float | None = arg(optional(positive_number), None,
                               "rotary position embedding of q and k with this base theta (Llama: 10000); "
                               "default: none", known_as=("rope_theta",))
    fused: bool = arg(boolean, False, "the score matrices are never held whole (flash attention's fused kernel): "
                      "inspect leaves the heads x T x S scores out of the activation memory", known_as=("flash",))
    main = "heads"
    merges = True  # (sequence,) for self-attention, (query, memory) for cross-attention

    # --- shapes -------------------------------------------------------------------------
    def _inputs(self, x: tuple) -> tuple[Steps, Steps]:
        """(query, memory): the memory is the query itself in self-attention."""
        if len(x) > 2:
            raise SpecError(f"attention reads a query and at most a memory (cross-attention), got {len(x)} inputs",
                            field="inputs", hint="inputs: [query, memory]")
        for role, shape in zip(("query", "memory"), x):
            if not isinstance(shape, Steps):
                raise SpecError(f"attention reads sequences [T, d], but its {role} is the {shape.layout} "
                                f"{shape_text(shape)}", field="inputs",
                                hint="turn a [C, H, W] map into tokens first: 'reshape: [C, -1]' then "
                                     "'permute: {dims: [1, 0], sequence: true}'")
            if len(shape) < 2:
                raise SpecError(f"attention needs vectors at each step, but its {role} is token ids "
                                f"{shape_text(shape)}", field="inputs",
                                hint="add '- embedding: {vocabulary: V, dim: E}' first")
        return x[0], x[-1]

    def width(self, x: tuple) -> tuple[int, int, int]:
        """(d, kv_heads, head_dim), the defaults filled in and checked."""
        query, memory = self._inputs(x)
        d = query[-1]
        kv_heads = self.kv_heads or self.heads
        if self.head_dim is None and d % self.heads:
            raise SpecError(f"{self.heads} heads cannot share the {d} features equally ({d}/{self.heads} = "
                            f"{d / self.heads:.2f})", field="heads",
                            hint=f"heads that divide {d} ({', '.join(map(str, divisors(d)[:6]))}...), "
                                 "or give head_dim")
        head_dim = self.head_dim or d // self.heads
        if self.heads % kv_heads:
            raise SpecError(f"kv_heads {kv_heads} must divide the {self.heads} heads (each key/value head serves "
                            f"heads/kv_heads query heads)", field="kv_heads",
                            hint=f"one of {', '.join(map(str, divisors(self.heads)))}")
        if self.rotary is not None and head_dim % 2:
            raise SpecError(f"rotary positions turn pairs of features, but head_dim is {head_dim}, odd",
                            field="rotary", hint="an even head_dim")
        if self.qkv == "fused" and memory[-1] != d:
            raise SpecError(f"fused q/k/v projections are one matrix over d = {d} features, but the memory has "
                            f"{memory[-1]}", field="qkv", hint="qkv: separate (its k_proj and v_proj read the memory)")
        return d, kv_heads, head_dim

    def output_shape(self, x: tuple) -> Shape:
        self.width(x)
        return x[0]

    def attending(self, x: tuple) -> Attending:
        """Its heads and positions (terms.Attending) for the sequence figures: the KV cache of a
        causal self-attention, the heads x T x S scores unless ``fused``, explain's board."""
        d, kv_heads, head_dim = self.width(x)
        query, memory = self._inputs(x)
        return Attending(self.heads, kv_heads, head_dim, query.steps, memory.steps, d, memory[-1],
                         causal=self.causal, cross=len(x) > 1, fused=self.fused)

    # --- parameters ---------------------------------------------------------------------
    def tensors(self, x: tuple) -> dict:
        """As PyTorch names them: fused, nn.MultiheadAttention's in_proj_weight [(heads + 2
        kv_heads)*hd, d], in_proj_bias, out_proj.weight [d, heads*hd], out_proj.bias [d];
        separate, Llama's q_proj, k_proj, v_proj, o_proj, each weight then bias."""
        d, kv_heads, head_dim = self.width(x)
        source = self._inputs(x)[1][-1]
        q, kv = self.heads * head_dim, kv_heads * head_dim
        if self.qkv == "fused":
            projections = {"in_proj": (q + 2 * kv, d), "out_proj": (d, q)}
        else:
            projections = {"q_proj": (q, d), "k_proj": (kv, source), "v_proj": (kv, source), "o_proj": (d, q)}
        found: dict = {}
        for name, shape in projections.items():
            fused = name == "in_proj"
            found[f"{name}_weight" if fused else f"{name}.weight"] = shape
            if self.bias:
                found[f"{name}_bias" if fused else f"{name}.bias"] = shape[:1]
        return found

    def count_terms(self, x: tuple, y: Shape) -> Counts:
        """params = d x (heads + 2 kv_heads) x head_dim + biases, then heads x head_dim x d + d:
        768x2304 + 2304 + 768x768 + 768 for ViT-B's 12 heads of 64."""
        d, kv_heads, head_dim = self.width(x)
        source = self._inputs(x)[1][-1]
        q, kv = self.heads * head_dim, kv_heads * head_dim
        bias = (q + 2 * kv, d) if self.bias else ()
        if source == d:
            weights: tuple = (Product((d, q + 2 * kv)),)
        else:
            weights = (Product((d, q)), Product((2, source, kv)))
        params = Count(self.params(x), Sum((*weights, Product((q, d)), *bias)),
                       "q, k, v projections; output projection")
        return dataclasses.replace(super().count_terms(x, y), params=params)

    # --- compute ------------------------------------------------------------------------
    def macs(self, x: tuple, y: Shape) -> int:
        """Projections T*d*heads*hd + 2*S*d_m*kv_heads*hd + T*heads*hd*d, and Q Kᵀ and A V,
        heads*T*S*hd each (full T*S: a causal mask does not halve them)."""
        d, kv_heads, head_dim = self.width(x)
        query, memory = self._inputs(x)
        t, s = query.steps, memory.steps
        q, kv = self.heads * head_dim, kv_heads * head_dim
        projections = t * d * q + 2 * s * memory[-1] * kv + t * q * d
        return projections + 2 * self.heads * t * s * head_dim

    def extra_flops(self, x: tuple, y: Shape) -> int:
        """Bias adds (T*(heads*hd + d) + 2*S*kv_heads*hd), per score (heads*T*S) 1 for the scale
        and 1 for the softmax, rotary 3 per element of q and k."""
        d, kv_heads, head_dim = self.width(x)
        query, memory = self._inputs(x)
        t, s = query.steps, memory.steps
        q, kv = self.heads * head_dim, kv_heads * head_dim
        biases = t * (q + d) + 2 * s * kv if self.bias else 0
        rotary = 3 * (t * q + s * kv) if self.rotary is not None else 0
        return biases + 2 * self.heads * t * s + rotary

    def memory_ops(self, x: tuple, y: Shape, training: bool, device: str) -> tuple:
        """The projections (each keeping its input; their outputs q, k, v referenced until the
        layer returns; one fused product split into views of it, whose backward joins their
        gradients), then F.scaled_dot_product_attention as PyTorch runs it on the CPU:
        ``fused`` (and no dropout while training), the flash kernel (its output and one float32
        log-sum-exp per head and query, keeping q, k and v; its backward makes the three
        gradients), whose output joins the heads without a copy; otherwise the math kernel (q and k
        each scaled by sqrt(1/sqrt(head_dim)) into new tensors, copied contiguous for the batched
        product, the heads x T x S scores, the causal mask added to them, their softmax (kept),
        in training with ``dropout`` a mask and the weights it keeps, v copied, A V, the heads joined in a copy); grouped-query attention repeats k and v to
        every head first (contiguous: no further copy). Rotary positions turn q and k first
        (``_rotated``). Then the output projection, keeping its input.
        Under autocast the projections run in 16 bits (autocast casts their input and weights,
        each bias a copy of its own) and the flash kernel in their dtype; the math kernel converts
        16-bit q, k and v to float32 first (OPMATH; held, with q scaled and the repeated k and v,
        until it returns), computes in float32, and converts A V and the weights it returns
        beside it back to q's dtype (the latter dropped by its caller)."""
        d, kv_heads, head_dim = self.width(x)
        query, memory = self._inputs(x)
        t, s = query.steps, memory.steps
        q, kv = self.heads * head_dim, kv_heads * head_dim
        bias, source = int(self.bias), memory[-1]
        cross = len(x) > 1

        def projection(elements: int, reads: str, rows: int, columns: int, sliced: bool = False) -> Op:
            """A linear projection of ``rows`` outputs (F.linear: addmm, a product under autocast);
            ``sliced``: its weights are rows of in_proj's (not cached by autocast)."""
            return Op(elements, reads=(reads,), saves=(INPUT,), weights=rows * (columns + bias), bias=bias * rows,
                      autocast=LOWER, product=True, uncached=sliced)
        memory_input = layer_input(1 if cross else 0)
        if self.qkv == "separate":
            ops = [projection(t * q, layer_input(0), q, d), projection(s * kv, memory_input, kv, source),
                   projection(s * kv, memory_input, kv, source)]
            qs, ks, vs = 0, 1, 2
        elif cross:   # q from the query, k and v together from the memory (in_proj's rows), split
            ops = [projection(t * q, layer_input(0), q, d, True), projection(s * 2 * kv, memory_input, 2 * kv, d, True),
                   Op(s * kv, reads=(1,), part=True, gradient="split"), Op(s * kv, reads=(1,), part=True, gradient="split")]
            qs, ks, vs = 0, 2, 3
        else:   # one product for all three, split into q, k and v (views; backward joins their gradients)
            ops = [projection(t * (q + 2 * kv), INPUT, q + 2 * kv, d),
                   *(Op(elements, reads=(0,), part=True, gradient="split") for elements in (t * q, s * kv, s * kv))]
            qs, ks, vs = 1, 2, 3
        lingering = set(range(len(ops)))   # q, k and v: referenced until the layer returns
        if self.rotary is not None:   # q and k turned: x cos + cat(-x2, x1) sin, cos and sin (T x hd, in q's dtype) kept
            first = qs
            qs, ks = (self._rotated(ops, source, steps, width, head_dim)
                      for source, steps, width in ((qs, t, q), (ks, s, kv)))
            # q, k = rotate(q), rotate(k): the first stays referenced while the second turns
            ops[first] = dataclasses.replace(ops[first], lingers=ks - first)
            lingering = {qs, ks, vs}   # the turned ones replace q and k
        out = Op(prod(y), saves=(INPUT,), weights=d * q + bias * d, bias=bias * d, macs=t * q * d, autocast=LOWER,
                 product=True)
        if self.fused and not (training and self.dropout):   # with dropout PyTorch falls back to the math kernel
            ops.append(Op(t * q, reads=tuple(dict.fromkeys((qs, ks, vs))),
                          extras=(Tensor(self.heads * t, "float32"),), saves=(INPUT, OUTPUT, 0)))
            ops.append(out)
        else:
            grouped = kv_heads != self.heads
            scores = self.heads * t * s

            def add(op: Op) -> int:
                ops.append(op)
                return len(ops) - 1
            # 16-bit q, k and v converted to float32 (OPMATH: themselves otherwise), held until it returns
            upcast = [add(Op(elements, reads=(source,), dtype=OPMATH, converts=True))
                      for source, elements in ((qs, t * q), (ks, s * kv), (vs, s * kv))]
            qs, ks, vs = upcast
            scaled_q = add(Op(t * q, reads=(qs,)))
            # the causal mask: T x S, 0 or -inf in q's dtype as the kernel computes it (from a bool tril)
            mask = add(Op(t * s, reads=(), dtype=OPMATH, unbatched=True)) if self.causal else None
            if grouped:   # repeat_interleave to every head
                ks, vs = add(Op(s * q, reads=(ks,))), add(Op(s * q, reads=(vs,)))
            scaled_k = add(Op(s * q, reads=(ks,)))
            copied_q = add(Op(t * q, reads=(scaled_q,), gradient="view"))
            copied_k = scaled_k if grouped else add(Op(s * q, reads=(scaled_k,), gradient="view"))
            product = scored = add(Op(scores, reads=(copied_q, copied_k), saves=(INPUT,)))
            if mask is not None:
                product = add(Op(scores, reads=(product, mask), gradient="view"))
            weights = add(Op(scores, reads=(product,), saves=(OUTPUT,)))
            if training and self.dropout:   # a mask (the dtype's, on the CPU) and the weights it keeps
                weights = add(Op(scores, reads=(weights,), extras=(Tensor(scores, MASK),), saves=(0,)))
            # the weights returned beside the output, in q's dtype (a copy of 16-bit ones), dropped by the caller
            returned = add(Op(scores, reads=(weights,), dtype=LOWER, converts=True))
            values = vs if grouped else add(Op(s * q, reads=(vs,), gradient="view"))
            mixed = add(Op(t * q, reads=(weights, values), saves=(INPUT,)))
            result = add(Op(t * q, reads=(mixed,), dtype=LOWER, converts=True))   # in q's dtype
            add(Op(t * q, reads=(result,), gradient="view"))   # the heads joined: a copy
            ops.append(out)
            # the kernel's locals (q, k and v converted, q scaled, k and v repeated, the weights
            # returned) live until it returns; k scaled is a temporary of the first product
            ends = {**dict.fromkeys((*upcast, scaled_q, weights, returned, *([mask] if mask is not None else [])),
                                    result),
                    scaled_k: scored,
                    **(dict.fromkeys((ks, vs), result) if grouped else {})}
            ops = [dataclasses.replace(op, lingers=ends[position] - position) if position in ends else op
                   for position, op in enumerate(ops)]
        return tuple(dataclasses.replace(op, lingers=len(ops) - 1 - position) if position in lingering else op
                     for position, op in enumerate(ops))

    @staticmethod
    def _rotated(ops: list[Op], source: int, steps: int, width: int, head_dim: int) -> int:
        """Append the rotary embedding of op ``source``'s output (``steps`` x ``width``) to ``ops``
        (the rotated tensor's op is the last): its angles computed in float32 at least (OPMATH,
        none batched): the frequencies, the positions, their product, doubled by a cat, its cos
        and sin converted to x's dtype; then -x2 (half of x), cat(-x2, x1), x cos, that sin,
        their sum. The frequencies, the angles, cos, sin and cat(-x2, x1) are the function's
        locals, alive until it returns."""
        start = len(ops)

        def unbatched(elements: int, *reads: int, **fields) -> Op:
            return Op(elements, reads=tuple(start + read for read in reads), unbatched=True, **fields)
        ops += [unbatched(head_dim // 2, dtype=OPMATH), unbatched(steps, dtype=OPMATH),   # frequencies, positions
                unbatched(steps * head_dim // 2, 1, 0), unbatched(steps * head_dim, 2),    # their product, doubled
                unbatched(steps * head_dim, 3), unbatched(steps * head_dim, 4, dtype=LOWER, converts=True),   # cos
                unbatched(steps * head_dim, 3), unbatched(steps * head_dim, 6, dtype=LOWER, converts=True),   # sin
                Op(steps * width // 2, reads=(source,)), Op(steps * width, reads=(start + 8, source)),
                Op(steps * width, reads=(source, start + 5), saves=(read(1),)),
                Op(steps * width, reads=(start + 9, start + 7), saves=(read(1),)),
                Op(steps * width, reads=(start + 10, start + 11), gradient="view")]
        end = len(ops) - 1
        for local in (source, start, start + 3, start + 5, start + 7, start + 9):
            ops[local] = dataclasses.replace(ops[local], lingers=max(ops[local].lingers, end - local))
        return end

    # --- PyTorch ------------------------------------------------------------------------
    def to_torch(self, x: tuple):
        """The Attention helper (backend/modules.py): the projections, then
        F.scaled_dot_product_attention."""
        d, kv_heads, head_dim = self.width(x)
        source = self._inputs(x)[1][-1]
        return module("Attention", d, self.heads,
                      **options(kv_heads=(kv_heads, self.heads), head_dim=(head_dim, d // self.heads),
                                bias=(self.bias, True), separate=(self.qkv == "separate", False),
                                causal=(self.causal, False), dropout=(self.dropout, 0.0),
                                rotary=(self.rotary, None), memory_dim=(source, d), fused=(self.fused, False)))
