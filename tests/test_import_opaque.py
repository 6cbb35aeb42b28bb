"""archcalc import --allow-opaque: what the mapping has no kind for kept as opaque layers.

The numbers they must match are PyTorch's: the model's parameters() and its traced shapes;
the MACs PyTorch counts inside an opaque operation are not counted by archcalc (at most PyTorch's).
"""
import json
from pathlib import Path

import pytest
from conftest import run_cli

torch = pytest.importorskip("torch")

from archcalc.backend.importer import import_model  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "docs" / "examples" / "models.py"


def test_unknown_operations_become_opaque_layers_with_pytorchs_parameters(tmp_path):
    """torch.roll and nn.Bilinear: refused without the flag; with it, opaque layers whose
    parameters make the totals PyTorch's (nn.Bilinear(16, 16, 5): 16 x 16 x 5 + 5 = 1,285)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("small_models", MODELS)
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    pytorch_params = sum(p.numel() for p in small.Unknown().parameters())

    target = tmp_path / "unknown.yaml"
    refused = run_cli("import", f"{MODELS}:Unknown", "--input", "3x6x6", "-o", target)
    assert refused.exit_code == 2
    assert "  forward: torch.roll (nearest: pad, reshape, permute)" in refused.output
    assert "  mix: nn.Bilinear" in refused.output and "--allow-opaque" in refused.output
    assert not target.exists()

    kept = run_cli("import", f"{MODELS}:Unknown", "--input", "3x6x6", "--allow-opaque", "-o", target)
    assert kept.exit_code == 0, kept.output
    assert f"{pytorch_params:,} parameters" in kept.output and pytorch_params == 3_717
    assert "opaque (2, shapes and parameters as traced, MACs and FLOPs not counted): roll, mix" in kept.output
    text = target.read_text()
    assert "- opaque: {op: torch.roll, shape: [4, 6, 6], name: roll}" in text
    assert "- opaque: {op: nn.Bilinear, shape: [5], parameters: 1285, name: mix, inputs: [fc, relu]}" in text

    report = json.loads(run_cli("inspect", target, "--format", "json").output)
    assert report["totals"]["params"] == pytorch_params
    assert report["totals"]["not_counted"] == ["roll", "mix"]
    assert [layer["macs"] for layer in report["layers"] if layer["kind"] == "opaque"] == [None, None]
    assert "opaque" in report["conventions"]
    table = run_cli("inspect", target).output
    assert "not counted: 2 opaque layers (roll, mix)" in table and "opaque nn.Bilinear" in table
    csv = run_cli("inspect", target, "--format", "csv").output.splitlines()
    assert csv[-2].startswith("mix,opaque,5,1285,1285,5,,,")  # MACs and FLOPs empty: unknown
    markdown = run_cli("inspect", target, "--format", "markdown").output
    assert "| opaque nn.Bilinear | 5 |  | 1,285 | 5 | ? | ? |" in markdown and "- not counted: 2 opaque layers" in markdown
    page = tmp_path / "unknown.html"
    assert run_cli("inspect", target, "--format", "html", "-o", page).exit_code == 0
    assert "not counted: 2 opaque layers (roll, mix)" in page.read_text()
    assert "MACs and FLOPs not counted" in run_cli("explain", target).output
    assert 'style="rounded,filled,dashed"' in run_cli("render", target, "-o", "-").output
    refused_run = run_cli("run", target, "--device", "cpu")
    assert refused_run.exit_code == 2
    assert "opaque layer (torch.roll) has no PyTorch form" in refused_run.output


@pytest.mark.slow
def test_parameters_read_by_an_operation_on_the_models_tensors_alone_are_counted_once():
    """Swin's pattern: a bias computed from a table (the model's tensors only; Swin v2's through
    an MLP over a buffer) feeds an unknown operation: one opaque layer holds them all."""
    from torch import nn

    class Windowed(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.zeros(9, 2))
            self.register_buffer("coords", torch.zeros(1, 3, 3, 2))
            self.cpb = nn.Linear(2, 4)
            self.qkv = nn.Linear(8, 24)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            bias = self.table.view(3, 3, 2).permute(2, 0, 1).contiguous().sum() + self.cpb(self.coords).sum()
            x = nn.functional.linear(x, self.qkv.weight, self.qkv.bias)
            x = torch.roll(x, 1, dims=1)[..., :8] + bias
            return self.head(x)

    from archcalc.layers.shapes import Steps

    imported = _import(Windowed, Steps((5, 8)))
    assert imported.spec.params == sum(p.numel() for p in Windowed().parameters()) == 18 + 12 + 216 + 27
    assert imported.exact


def _import(factory, shape):
    import sys
    import types

    module = types.ModuleType("opaque_test_models")
    module.build = factory
    sys.modules["opaque_test_models"] = module
    try:
        return import_model("opaque_test_models:build", [shape], allow_opaque=True)
    finally:
        del sys.modules["opaque_test_models"]
