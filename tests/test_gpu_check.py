"""scripts/gpu_check.py on a machine without CUDA: it still runs, on the CPU, and says so."""
import importlib.util
import json

import pytest
from conftest import ROOT, SPECS

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # VGG16 forward and training on the CPU: 8-16 s


def test_gpu_check_runs_on_cpu_and_says_no_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run the script itself")
    loader = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    script = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(script)
    code = script.main(["--specs", str(SPECS / "course_signal.yaml"), str(SPECS / "lenet1.yaml"),
                        "--output-dir", str(tmp_path)])
    assert code == 0
    assert "no GPU found" in capsys.readouterr().out
    report = json.loads((tmp_path / "gpu_check_cpu.json").read_text())
    assert report["environment"]["cuda"] is False
    assert [row["spec"] for row in report["specs"]] == ["course_signal.yaml", "lenet1.yaml"]
    assert all(row["ok"] and row["forward"]["samples_per_second"] > 0 for row in report["specs"])
    vgg = report["vgg16"]
    assert vgg["params"] == 138_357_544 and vgg["max_output_difference"] < 1e-5  # the same network
    assert set(vgg["ratio"]) == {"forward", "train"}
    markdown = (tmp_path / "gpu_check_cpu.md").read_text()
    assert "No GPU found: this run used the CPU" in markdown and "| lenet1.yaml | 6 | 3,246 | yes |" in markdown
