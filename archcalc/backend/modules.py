"""The few modules the spec language needs and torch.nn lacks.

``archcalc export`` copies the source of each helper a model uses into the exported file, so
every helper here must be self-contained: it may use only ``torch`` and ``nn``.
"""
from __future__ import annotations

import torch
from torch import nn


class Add(nn.Module):
    """Element-wise sum of the inputs, y = a + b + ... (ResNet's shortcut)."""

    def forward(self, *inputs):
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total


class Multiply(nn.Module):
    """Element-wise product of the inputs, y = a * b * ... (squeeze-excitation's gate)."""

    def forward(self, *inputs):
        product = inputs[0]
        for other in inputs[1:]:
            product = product * other
        return product


class Subtract(nn.Module):
    """Element-wise difference of two inputs, y = a - b."""

    def forward(self, a, b):
        return a - b


class Abs(nn.Module):
    """|x| element-wise (torch.nn has no module for it)."""

    def forward(self, x):
        return torch.abs(x)


class Concat(nn.Module):
    """The inputs joined along one tensor dimension (1 = channels, after the batch)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        return torch.cat(inputs, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"



class Split(nn.Module):
    """torch.split(x, sizes, dim): a tuple of views, one per part."""

    def __init__(self, sizes, dim=1):
        super().__init__()
        self.sizes = sizes
        self.dim = dim

    def forward(self, x):
        return torch.split(x, self.sizes, self.dim)

    def extra_repr(self):
        return f"sizes={self.sizes}, dim={self.dim}"


class Chunk(nn.Module):
    """torch.chunk(x, chunks, dim): a tuple of views, one per part."""

    def __init__(self, chunks, dim=1):
        super().__init__()
        self.chunks = chunks
        self.dim = dim

    def forward(self, x):
        return torch.chunk(x, self.chunks, self.dim)

    def extra_repr(self):
        return f"chunks={self.chunks}, dim={self.dim}"


class Reshape(nn.Module):
    """x.reshape per sample: (N, *shape), one size -1 inferred."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return f"shape={self.shape}"


class Permute(nn.Module):
    """x.permute per sample: output axis i is input axis dims[i] (the batch axis stays first)."""

    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(0, *(axis + 1 for axis in self.dims))

    def extra_repr(self):
        return f"dims={self.dims}"

def preset(module, weight=None, bias=None):
    """``module`` with its weight and bias set to given numbers (the course's worked examples).

    A flat list fills the tensor in PyTorch's order (filters, channels, then kernel axes).
    """
    with torch.no_grad():
        if weight is not None:
            module.weight.copy_(torch.tensor(weight).reshape(module.weight.shape))
        if bias is not None:
            module.bias.copy_(torch.tensor(bias).reshape(module.bias.shape))
    return module


class Recurrent(nn.Module):
    """A batch-first nn.RNN/LSTM/GRU that returns every step's output (N, T, H*dirs) or, with
    ``last``, the final hidden state of the top layer (N, H*dirs). An optional second input
    (N, H) is the initial hidden state of every layer and direction (an encoder's last state)."""

    def __init__(self, cell, last=False):
        super().__init__()
        self.cell = cell
        self.last = last

    def forward(self, sequence, initial=None):
        directions = 2 if self.cell.bidirectional else 1
        state = None
        if initial is not None:
            hidden = initial.unsqueeze(0).expand(self.cell.num_layers * directions, -1, -1).contiguous()
            state = (hidden, torch.zeros_like(hidden)) if isinstance(self.cell, nn.LSTM) else hidden
        steps = sequence.shape[1]
        if sequence.is_meta and steps > 1:
            # PyTorch computes a recurrence on the meta device one step at a time in Python (ms per
            # step: 100,000 steps took minutes, 2^50 ran out of memory); the step axis passes through
            # a recurrence unchanged, so its first step gives every shape
            outputs, final = self.cell(sequence[:, :1], state)
            outputs = outputs.expand(-1, steps, -1)
        else:
            outputs, final = self.cell(sequence, state)
        if not self.last:
            return outputs
        hidden = final[0] if isinstance(self.cell, nn.LSTM) else final
        # the top layer's state of each direction, indexed one by one (torch.fx can trace that; it
        # cannot iterate a slice of a traced tensor)
        return torch.cat([hidden[index] for index in range(-directions, 0)], dim=-1)

    def extra_repr(self):
        return "last=True" if self.last else ""


def single_bias(cell):
    """``cell`` (nn.RNN/LSTM/GRU) with one bias per gate, as the course writes h = tanh(Wx + Wh + b):
    PyTorch's second bias vectors (bias_hh_*) become fixed zeros, not parameters."""
    for name in [name for name, _ in cell.named_parameters() if name.startswith("bias_hh")]:
        zeros = torch.zeros_like(getattr(cell, name))
        delattr(cell, name)
        cell.register_buffer(name, zeros, persistent=False)
    cell._init_flat_weights()
    return cell


class RepeatVector(nn.Module):
    """A vector (N, F) fed at each of ``steps`` steps: (N, steps, F)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def forward(self, vector):
        return vector.unsqueeze(1).expand(-1, self.steps, -1)

    def extra_repr(self):
        return f"steps={self.steps}"


class Scale(nn.Module):
    """A learned factor per channel, y = weight * x (ConvNeXt's layer scale gamma * x): weight is
    [C, 1, ...] on a feature map, [F] on a sequence's or a vector's features."""

    def __init__(self, shape, init=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x):
        return self.weight * x


class Parameter(nn.Module):
    """A learned tensor (a class token, position embeddings), the same for every sample: forward
    reads only the batch size of the tensor it is given and expands the weight over it (a view),
    as torchvision's ViT does with class_token.expand(n, -1, -1). Initialised as ViT's position
    embedding, normal with standard deviation 0.02."""

    def __init__(self, shape):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape) * 0.02)

    def forward(self, batch):
        return self.weight.expand(batch.shape[0], *self.weight.shape)


class ChannelsLast(nn.Module):
    """``norm`` (nn.LayerNorm(C), nn.RMSNorm(C)) over the channels of (N, C, ...) at every
    position: the channels moved last and back, as torchvision's LayerNorm2d (ConvNeXt) permutes
    around F.layer_norm."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention over (N, T, dim), computed by
    F.scaled_dot_product_attention: q, k, v projections, softmax(q kᵀ / sqrt(head_dim)) v per
    head (kv_heads < heads: each key/value head serves heads / kv_heads query heads), the heads
    joined, the output projection. With a second input (N, S, memory_dim) the keys and values
    come from it (cross-attention).

    Fused (default): nn.MultiheadAttention's tensors and initialisation, in_proj_weight
    [(heads + 2 kv_heads) * head_dim, dim] (q, k, v rows in that order), in_proj_bias and
    out_proj; ``separate``: q_proj, k_proj, v_proj, o_proj (Llama's names). ``rotary``: the
    rotary position embedding of base theta on q and k, in Hugging Face Llama's rotate-half form
    (cos and sin computed from the positions in float32, or float64 for float64, no buffer).
    ``fused`` lets PyTorch pick its fused kernels (flash, memory-efficient), which never hold the
    heads x T x S scores; otherwise SDPA runs its math kernel, which computes, keeps for the
    backward pass and frees the scores as eager attention does (the spec's ``fused: false``)."""

    def __init__(self, dim, heads, kv_heads=None, head_dim=None, bias=True, separate=False, causal=False,
                 dropout=0.0, rotary=None, memory_dim=None, fused=False):
        super().__init__()
        self.fused = fused
        self.heads, self.kv_heads = heads, kv_heads or heads
        self.head_dim = head_dim or dim // heads
        self.causal, self.dropout, self.rotary = causal, dropout, rotary
        self.separate = separate
        memory_dim = memory_dim or dim
        width, kv_width = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.widths = (width, kv_width, kv_width)
        if separate:
            self.q_proj = nn.Linear(dim, width, bias=bias)
            self.k_proj = nn.Linear(memory_dim, kv_width, bias=bias)
            self.v_proj = nn.Linear(memory_dim, kv_width, bias=bias)
            self.o_proj = nn.Linear(width, dim, bias=bias)
        else:
            self.in_proj_weight = nn.Parameter(torch.empty(width + 2 * kv_width, dim))
            self.in_proj_bias = nn.Parameter(torch.zeros(width + 2 * kv_width)) if bias else None
            self.out_proj = nn.Linear(width, dim, bias=bias)
            nn.init.xavier_uniform_(self.in_proj_weight)
            if bias:
                nn.init.zeros_(self.out_proj.bias)

    def project(self, x, memory):
        """q (N, T, heads*hd), k and v (N, S, kv_heads*hd)."""
        if self.separate:
            return self.q_proj(x), self.k_proj(memory), self.v_proj(memory)
        if memory is x:  # one product for all three
            return torch.nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).split(self.widths, -1)
        width = self.widths[0]
        weight, bias = self.in_proj_weight, self.in_proj_bias
        q = torch.nn.functional.linear(x, weight[:width], None if bias is None else bias[:width])
        kv = torch.nn.functional.linear(memory, weight[width:], None if bias is None else bias[width:])
        return (q, *kv.split(self.widths[1:], -1))

    def rotate(self, x):
        """x (N, heads, T, hd) turned by the rotary embedding: x*cos + rotate_half(x)*sin."""
        half = self.head_dim // 2
        exact = torch.promote_types(x.dtype, torch.float32)  # float32 at least, as Llama's (float64 kept)
        frequencies = 1.0 / self.rotary ** (torch.arange(0, half, device=x.device, dtype=exact) / half)
        angles = torch.arange(x.shape[2], device=x.device, dtype=exact)[:, None] * frequencies
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + turned * sin

    def forward(self, x, memory=None):
        q, k, v = self.project(x, x if memory is None else memory)
        n, t, s = x.shape[0], q.shape[1], k.shape[1]
        q = q.view(n, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(n, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(n, s, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotate(q), self.rotate(k)
        kernel = torch.nn.attention.SDPBackend
        # fused: any kernel, PyTorch's choice (flash on CPU and most GPUs); else only the math one
        kernels = [kernel.FLASH_ATTENTION, kernel.EFFICIENT_ATTENTION, kernel.CUDNN_ATTENTION, kernel.MATH]
        with torch.nn.attention.sdpa_kernel(kernels if self.fused else [kernel.MATH]):
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal,
                enable_gqa=self.kv_heads != self.heads)
        y = y.transpose(1, 2).reshape(n, t, self.heads * self.head_dim)
        return (self.o_proj if self.separate else self.out_proj)(y)

    def extra_repr(self):
        return (f"heads={self.heads}, kv_heads={self.kv_heads}, head_dim={self.head_dim}, causal={self.causal}, "
                f"rotary={self.rotary}, fused={self.fused}")


class Positions(nn.Module):
    """Learned absolute position embeddings, a table of ``max`` positions x ``dim`` (GPT-2's wpe),
    rows 0..T-1 added to (N, T, dim). Initialised normal with standard deviation 0.02, as GPT-2."""

    def __init__(self, max, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max, dim) * 0.02)

    def forward(self, x):
        return x + self.weight[:x.shape[1]]


class Sinusoidal(nn.Module):
    """Fixed sinusoidal positions added to (N, T, d): PE[t, 2i] = sin(t / base^(2i/d)),
    PE[t, 2i+1] = cos(t / base^(2i/d)) (Vaswani et al. 2017), made in forward (no state)."""

    def __init__(self, base=10000):
        super().__init__()
        self.base = base

    def forward(self, x):
        steps, dim = x.shape[1], x.shape[2]
        exact = torch.promote_types(x.dtype, torch.float32)
        pairs = torch.arange(0, dim, 2, device=x.device, dtype=exact)
        angles = torch.arange(steps, device=x.device, dtype=exact)[:, None] / self.base ** (pairs / dim)
        table = torch.empty(steps, dim, device=x.device, dtype=exact)
        table[:, 0::2] = angles.sin()
        table[:, 1::2] = angles.cos()[:, :dim // 2]
        return x + table.to(x.dtype)

    def extra_repr(self):
        return f"base={self.base}"


class Select(nn.Module):
    """One step of (N, T, F): x[:, index] (a class token), (N, F)."""

    def __init__(self, index=0):
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, self.index]

    def extra_repr(self):
        return f"index={self.index}"


class Mean(nn.Module):
    """The mean over one dimension (1: a sequence's steps of (N, T, F)), which it removes."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.mean(self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


def tie(module, owner):
    """``module`` made to use ``owner``'s parameters, the one Parameter for both, matched by name
    (GPT-2's LM head and its token embedding: head.weight is wte.weight, as transformers'
    tie_weights makes it); the module's own are dropped."""
    theirs = {path.rsplit(".", 1)[-1]: parameter for path, parameter in owner.named_parameters()}
    for path, _ in list(module.named_parameters()):
        holder, _, name = path.rpartition(".")
        setattr(module.get_submodule(holder), name, theirs[name])
    return module


# Recipes name a helper by its Python name; add new helpers here.
HELPERS = {helper.__name__: helper for helper in (Add, Multiply, Subtract, Abs, Concat, preset, Recurrent, single_bias,
                                                  RepeatVector, Scale, Parameter, ChannelsLast,
                                                  Split, Chunk, Reshape, Permute, Attention, tie,
                                                  Positions, Sinusoidal, Select, Mean)}


def resolve(name: str):
    """The constructor a recipe names: 'nn.Conv2d' -> torch.nn.Conv2d, 'Add' -> Add."""
    if name.startswith("nn."):
        return getattr(nn, name[len("nn."):])
    return HELPERS[name]


def frozen_parameters(module, names: tuple) -> list:
    """[(path, parameter)] of ``module``'s parameters named in ``names`` ('freeze: [bias]'), by
    the name the layer kind gives them, the end of their path: 'bias' is '0.bias' in a conv
    followed by its activation, 'weight_ih_l0' is 'cell.weight_ih_l0' in a recurrent layer,
    'out_proj.weight' is itself in an attention layer (whose 'weight' alone names nothing)."""
    return [(path, parameter) for path, parameter in module.named_parameters()
            if any(path == name or path.endswith("." + name) for name in names)]


def construct(recipe):
    """The torch module (or whatever the constructor returns) a layers.recipe.Recipe describes."""
    from ..layers.recipe import Recipe

    def built(value):
        return construct(value) if isinstance(value, Recipe) else value

    constructor = resolve(recipe.name)
    return constructor(*[built(value) for value in recipe.args],
                       **{key: built(value) for key, value in recipe.kwargs})
