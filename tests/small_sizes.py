"""The transformer specs at a size the CPU runs in a moment (--set overrides of their params):
the import tests count them at full size on the meta device and compare outputs at this size."""

SMALL = {
    "gpt2": {"T": 12, "vocab": 101, "positions": 16, "width": 32, "heads": 4, "mlp": 64, "layers": 2},
    "bert_base": {"T": 12, "vocab": 101, "positions": 16, "width": 32, "heads": 4, "mlp": 64, "layers": 2},
    "tinyllama": {"T": 12, "vocab": 101, "width": 64, "mlp": 96, "layers": 2, "heads": 8, "kv_heads": 2},
    "vit_b_16": {"patch": 16, "width": 32, "heads": 4, "mlp": 64, "layers": 2},
}
