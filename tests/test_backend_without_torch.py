"""What the backend promises without torch: the static path never loads it, explicit weights are
checked before it is needed, and run/export without it say how to install it (no traceback)."""
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ROOT, spec_text

from archcalc.cli import main


def test_static_path_and_backend_import_never_load_torch():
    code = ("import sys, archcalc, archcalc.backend\n"
            "from archcalc.cli import main\n"
            "archcalc.analyze(archcalc.load('specs/course_signal.yaml'))\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("layers,message", [
    (["conv: {filters: 1, kernel: 3, bias: false, weights: [1, 2]}"], "weights has 2 numbers but this layer needs 3"),
    (["conv: {filters: 2, kernel: 3, bias: false, weights: [[[1, 2, 3]]]}"], "weights is nested as 1x1x3"),
    (["conv: {filters: 1, kernel: 3, weights: [1, 2, 3]}"], "explicit weights with a random bias"),
    (["conv: {filters: 1, kernel: 3, bias: [1]}"], "bias values without weights"),
    (["conv: {filters: 1, kernel: 3, bias: false, weights: [1, [2], 3]}"], "mixes numbers and lists"),
    (["flatten", "dense: {units: 2, weights: [1, 2, 3], bias: false}"], "weights has 3 numbers but this layer needs 18"),
])
def test_explicit_values_are_checked_statically(tmp_path, layers, message):
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text((1, 9), *layers))
    result = CliRunner().invoke(main, ["inspect", str(spec)])
    assert result.exit_code == 2
    assert message in result.output and "s.yaml:" in result.output


def test_without_torch_run_and_export_say_how_to_install_it(tmp_path):
    for command in (["run", "specs/signal1d.yaml"], ["export", "specs/signal1d.yaml", "-o", str(tmp_path / "m.py")]):
        code = ("import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
                f"from archcalc.cli import main; main({command!r})\n")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 2
        assert "pip install -e '.[torch]'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "m.py").exists()
