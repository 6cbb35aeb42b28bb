"""torchinfo's habits in inspect (issue 12): --depth, --columns, --batch-axis, the input size,
CSV's totals row, markdown's nested lines. Pinned numbers come from torchinfo's and torchvision's
published tables and from hand arithmetic, never from our own output."""
import csv
import io
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS

from archcalc.choices import COLUMNS
from archcalc.cli import main
from archcalc.views import report

SUMMED = {"params": "params", "trainable_params": "trainable_params", "neurons": "neurons", "macs": "macs",
          "batch_macs": "batch_macs", "flops": "flops", "batch_flops": "batch_flops", "memory_bytes": "forward_bytes"}


def run(*argv):
    return CliRunner().invoke(main, [str(arg) for arg in argv])


def csv_rows(*argv) -> list:
    result = run("inspect", *argv, "-f", "csv")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def totals_of(*argv) -> dict:
    return json.loads(run("inspect", *argv, "-f", "json").stdout)["totals"]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, None])
@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "captioning_vgg16", "inception", "unet_small",
                                  "alexnet"])
def test_collapsed_rows_add_up_to_the_totals(name, depth):
    spec = SPECS / f"{name}.yaml"
    depth_option = () if depth is None else ("--depth", depth)
    rows = csv_rows(spec, *depth_option, "-b", "4", "--columns", "params,trainable_params,neurons,macs,batch_macs,"
                    "flops,batch_flops,memory")
    layers, total = rows[:-1], rows[-1]
    totals = totals_of(spec, "-b", "4")
    assert total["name"] == "total"
    for column, figure in SUMMED.items():
        assert sum(int(row[column]) for row in layers) == int(total[column]) == totals[figure], column


def test_resnet_stages_at_depth_one_are_torchinfos():
    """torchinfo's ResNet-18 summary (depth 1): layer1 147,968 params; layer2 525,568; layer3
    2,099,712; layer4 8,393,728. Our spec writes layer1 as a repeat and the later stages as two
    block instances each."""
    rows = {row["name"]: row for row in csv_rows(SPECS / "resnet18.yaml", "--depth", "1")}
    assert int(rows["layer1"]["params"]) == 147_968 and rows["layer1"]["kind"] == "repeat"
    for first, second, params in (("basic_down1", "basic3", 525_568), ("basic_down2", "basic4", 2_099_712),
                                  ("basic_down3", "basic5", 8_393_728)):
        assert int(rows[first]["params"]) + int(rows[second]["params"]) == params
        assert rows[first]["kind"] == "block"
    assert rows["basic5"]["output_shape"] == "512x7x7"  # a block outputs its last layer's shape
    assert list(rows)[:5] == ["conv1", "bn1", "relu1", "pool1", "layer1"]
    deeper = [row["name"] for row in csv_rows(SPECS / "resnet18.yaml", "--depth", "2")]
    assert "basic1" in deeper and "basic2" in deeper and "layer1" not in deeper  # the repeat's blocks
    every = [row["name"] for row in csv_rows(SPECS / "resnet18.yaml", "--depth", "3")]
    assert every == [row["name"] for row in csv_rows(SPECS / "resnet18.yaml")]


def test_a_block_reading_beyond_the_row_before_says_so():
    text = run("inspect", SPECS / "inception.yaml", "--depth", "1").stdout
    assert "inception3a " in text and "<-" not in text  # each module reads the one before
    table = run("inspect", SPECS / "unet_small.yaml", "--depth", "1").stdout
    assert "<- " in table  # the skip connections of a U-Net


def test_columns_choose_and_order_the_table(tmp_path):
    text = run("inspect", SPECS / "alexnet.yaml", "--columns", "kernel,params_percent,trainable,params").stdout
    header = next(line for line in text.splitlines() if line.strip().startswith("layer"))
    assert header.split() == ["layer", "kernel", "params", "%", "trainable", "params"]
    fc6 = next(line for line in text.splitlines() if line.strip().startswith("FC6"))
    assert fc6.split() == ["FC6", "60.52%", "True", "37,752,832"]  # 37,752,832 / 62,378,344
    conv1 = next(line for line in text.splitlines() if line.strip().startswith("CONV1"))
    assert conv1.split()[:2] == ["CONV1", "11x11"]
    assert next(line for line in text.splitlines() if line.strip().startswith("POOL1")).split()[:2] == ["POOL1",
                                                                                                        "3x3"]
    assert next(line for line in text.splitlines() if line.strip().startswith("flatten1")).split()[-2] == "--"


def test_trainable_is_true_partial_or_false(tmp_path):
    spec = tmp_path / "frozen.yaml"
    spec.write_text("input: [3, 8, 8]\nblocks:\n  pair:\n    layers:\n"
                    "      - conv: {filters: 4, kernel: 3, padding: 1, trainable: false}\n"
                    "      - conv: {filters: 4, kernel: 3, padding: 1}\n"
                    "layers:\n  - pair\n  - conv: {filters: 2, kernel: 1, trainable: false}\n  - relu\n")
    rows = csv_rows(spec, "--depth", "1", "--columns", "trainable,params,trainable_params")
    assert [(row["name"], row["trainable"]) for row in rows[:-1]] == [("pair1", "Partial"), ("conv1", "False"),
                                                                       ("relu1", "--")]
    assert int(rows[0]["params"]) == (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4)  # the frozen conv, then the other
    assert int(rows[0]["trainable_params"]) == 4 * 4 * 9 + 4


@pytest.mark.parametrize("value,message", [("kernal", "did you mean 'kernel'?"), ("params,macz", "'macz'"),
                                           ("params,params", "named twice"), ("layer", "always the first column")])
def test_unknown_columns_are_refused(value, message):
    result = run("inspect", SPECS / "alexnet.yaml", "--columns", value)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert result.output.startswith("error: --columns")


@pytest.mark.parametrize("option", [("--depth", "1"), ("--columns", "params"), ("--batch-axis",)])
def test_json_refuses_the_table_options(option):
    result = run("inspect", SPECS / "alexnet.yaml", "-f", "json", *option)
    assert result.exit_code == 2 and f"error: {option[0]}: does not apply to JSON" in result.output


def test_the_column_set_is_documented_once():
    assert tuple(report.COLUMN_NAMES) == COLUMNS
    readme = (SPECS.parent / "docs" / "commands.md").read_text()
    for name in COLUMNS:
        assert f"`{name}`" in readme, name


def test_batch_axis():
    text = run("inspect", SPECS / "alexnet.yaml", "-b", "8", "--batch-axis", "--columns", "input,output").stdout
    assert text.splitlines()[0] == "AlexNet: input 8x3x227x227 (N x C x H x W)"
    assert next(line for line in text.splitlines() if "CONV1" in line).split() == ["CONV1", "8x3x227x227",
                                                                                 "8x96x55x55"]
    rows = csv_rows(SPECS / "alexnet.yaml", "-b", "8", "--batch-axis")
    assert rows[0]["output_shape"] == "8x96x55x55"
    sequence = run("inspect", SPECS / "char_rnn_masse.yaml", "-b", "2", "--batch-axis").stdout
    assert "(NxTxF)" in sequence


def test_input_size_line():
    """AlexNet's input, 3 x 227 x 227 = 154,587 values of 4 bytes: 618,348 B; batch 8: 4,946,784 B."""
    assert "input size: 618.35 kB (603.86 KiB) (batch 1, float32)" in run("inspect", SPECS / "alexnet.yaml").stdout
    assert totals_of(SPECS / "alexnet.yaml", "-b", "8")["input_bytes"] == 4_946_784
    assert totals_of(SPECS / "alexnet.yaml", "--dtype", "float16")["input_bytes"] == 309_174


def test_markdown_keeps_nested_lines():
    markdown = run("inspect", SPECS / "resnet18.yaml", "-f", "markdown").stdout
    assert "| basic1.add1 \\<- bn2, pool1 | add |" in markdown
    notes = run("inspect", SPECS / "cifar_stride3.yaml", "--rounding", "floor", "--input", "3x33x33",
                "-f", "markdown").stdout
    rows = [line for line in notes.splitlines() if line.startswith("| ")]
    assert rows[2].startswith("|  |  |  | ! floor along H") and rows[3].startswith("|  |  |  | ! floor along W")
    collapsed = run("inspect", SPECS / "resnet18.yaml", "-f", "markdown", "--depth", "1").stdout
    assert "| layer1 | repeat (14 layers) | 64x56x56 |" in collapsed


def test_json_says_what_each_layer_is_within():
    layers = {layer["name"]: layer for layer in
              json.loads(run("inspect", SPECS / "captioning_vgg16.yaml", "-f", "json").stdout)["layers"]}
    assert layers["block1.conv1"]["within"] == ["block1", "block1.repeat1"]
    assert layers["block1.pool1"]["within"] == ["block1"] and layers["fc6"]["within"] == []
