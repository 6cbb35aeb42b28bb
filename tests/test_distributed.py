"""archcalc run --nproc N --shard ddp|fsdp: real torch.distributed runs on CPU (gloo), each rank's
peak and collectives beside the static prediction, FSDP2's shards as PyTorch holds them, and the
errors, with no process left behind."""
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SPECS

from archcalc.cli import main

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is needed", allow_module_level=True)


def children() -> list[int]:
    """Processes whose parent is this one (from /proc: psutil is not a dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == os.getpid():
                found.append(int(entry.name))
    return found


def run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def ranks_of(output: str) -> dict:
    return json.loads(output)


def chunk_rows(shape, world, rank) -> int:
    """What PyTorch's torch.chunk gives ``rank`` of a tensor's first axis: FSDP2's Shard(0)."""
    pieces = torch.empty(shape, device="meta").chunk(world, dim=0)
    return pieces[rank].shape[0] if rank < len(pieces) else 0


def check_run(spec: str, shard: str, nproc: int, batch: int, low=0.95, high=1.05):
    if shard == "fsdp":
        pytest.importorskip("torch.distributed.fsdp")  # here, not at collection: 1.5 s of CPU
    before = set(children())
    result = run(SPECS / f"{spec}.yaml", "--nproc", nproc, "--shard", shard, "--batch", batch, "--optimizer", "adam",
                 "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    assert set(children()) <= before   # every rank reaped
    found = ranks_of(result.output)
    for rank, expected in zip(found["ranks"], found["predicted"]):
        predicted = expected["total_bytes"]
        assert low <= predicted / rank["peak_bytes"] <= high, (rank["rank"], predicted, rank["peak_bytes"])
        if shard == "fsdp":   # every parameter and gradient: to_local()'s rows are torch.chunk's
            assert rank["shards"] and all(rows == chunk_rows(shape, nproc, rank["rank"])
                                          for shape, rows in rank["shards"] + rank["gradient_shards"])
        payload = {c["collective"]: 0 for c in expected["collectives"]}
        for c in expected["collectives"]:
            payload[c["collective"]] += c["payload_bytes"]
        assert rank["collectives"] == payload
    return found


@pytest.mark.slow
def test_fsdp_on_two_processes():
    """mnist_dense (7,850 parameters): the weight [10, 784] splits 5 + 5 rows, the bias [10] 5 + 5."""
    found = check_run("mnist_dense", "fsdp", 2, 8)
    assert sorted(found["ranks"][0]["shards"]) == [[[10], 5], [[10, 784], 5]]
    # DDP's all-reduce moves the gradients once; FSDP gathers the parameters and reduce-scatters the gradients
    assert found["ranks"][1]["collectives"] == {"all-gather": 31_400, "reduce-scatter": 31_400}


def small_specs() -> list:
    """The shipped specs that train on CPU in seconds: a step's training FLOPs at batch 8 at most
    10 G (benchmarks/distributed_bench.py's selection)."""
    from archcalc.analysis import analyze
    from archcalc.spec import load

    found = []
    for path in sorted(SPECS.glob("*.yaml")):
        analysis = analyze(load(str(path)), batch=8)
        if 3 * analysis.totals.flops * 8 <= 10 * 10**9:
            found.append(analysis)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2, 4])
def test_every_small_spec_under_ddp_and_fsdp(nproc):
    """Every small shipped spec (but those FSDP cannot shard over 4: fewer parameters than
    processes), DDP and FSDP, on one process group: every rank's predicted peak within 5% of the
    measured one, FSDP's shards and every payload exactly as predicted."""
    pytest.importorskip("torch.distributed.fsdp")
    from archcalc.backend.distributed import run_each

    runs = [(analysis, {"spec": analysis.spec.path, "batch": 8, "dtype": "float32", "shard": shard,
                        "shard_units": [], "optimizer": "adam", "seed": 0, "device": "cpu"})
            for analysis in small_specs() for shard in ("ddp", "fsdp")
            if shard == "ddp" or analysis.totals.params >= nproc]
    before = set(children())
    outside = []
    for (_, options), result in zip(runs, run_each(runs, nproc)):
        assert result.ok, (options["spec"], result.disagreements)
        ratios = [p.total_bytes / r.peak_bytes for p, r in zip(result.predicted, result.ranks)]
        if not all(0.95 <= ratio <= 1.05 for ratio in ratios):
            outside.append((options["spec"], options["shard"], ratios))
    assert not outside
    assert set(children()) <= before


@pytest.mark.slow
def test_uneven_shards_of_an_odd_first_axis():
    """lenet5 (1x28x28 input) on 4: a [6, 1, 5, 5] conv weight splits 2, 2, 2, 0 rows; [120, 256] 30 each; [84] 21 each;
    [10] 3, 3, 3, 1 (torch.chunk)."""
    found = check_run("lenet5", "fsdp", 4, 8)
    last = dict((tuple(shape), rows) for shape, rows in found["ranks"][3]["shards"])
    assert last[(6, 1, 5, 5)] == 0 and last[(10,)] == 1 and last[(120, 256)] == 30


@pytest.mark.slow
def test_torchrun_runs_the_same_workers(tmp_path):
    """torchrun starts the workers as the launcher does: each rank writes its result."""
    import subprocess

    options = {"spec": str(SPECS / "mnist_dense.yaml"), "batch": 4, "dtype": "float32", "shard": "ddp",
               "optimizer": "sgd", "seed": 0, "device": "cpu"}
    (tmp_path / "options.json").write_text(json.dumps(options))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(_free_port()), "-m", "archcalc.backend.distributed",
                           str(tmp_path / "options.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["collectives"] == {"all-reduce": 7_850 * 4}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("args", "message"), [
    (("mnist_dense", "--nproc", 3, "--batch", 4), "--nproc 3 does not divide the batch of 4: every process"),
    (("resnet18", "--nproc", 2, "--batch", 2, "--shard", "fsdp", "--shard-unit", "stage9"),
     "--shard-unit 'stage9' is not a repeat, block or layer"),
    (("course_grey", "--nproc", 4, "--batch", 4, "--shard", "fsdp"), "too small to shard: 3 parameters for 4"),
    (("mnist_dense", "--nproc", 2, "--batch", 2, "--device", "meta"), "a distributed run trains for real"),
    (("mnist_dense", "--nproc", 1), "--nproc"),
])
def test_errors_before_any_process_starts(args, message):
    before = set(children())
    result = run(SPECS / f"{args[0]}.yaml", *args[1:])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert set(children()) <= before


def test_a_taken_port_is_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run(SPECS / "mnist_dense.yaml", "--nproc", 2, "--batch", 2, "--master-port", port)
    assert result.exit_code == 2, result.output
    assert f"port {port} is already taken" in result.output
    assert "leave out --master-port" in result.output


@pytest.mark.slow
def test_a_port_taken_after_its_choice_is_chosen_again(monkeypatch):
    """A free port may be taken before rank 0 binds it (tests in parallel, any other program): the
    run starts again on another instead of failing."""
    from archcalc.backend import distributed

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        chosen = [_free_port(), holder.getsockname()[1]]  # popped from the end: the taken one first
        monkeypatch.setattr(distributed, "free_port", chosen.pop)
        result = run(SPECS / "mnist_dense.yaml", "--nproc", 2, "--batch", 2, "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    assert chosen == []  # both ports were used: the taken one first
    assert ranks_of(result.output)["ranks"][0]["collectives"] == {"all-reduce": 7_850 * 4}


def test_a_rank_that_dies_stops_the_others():
    """Rank 1 is killed as it starts: the launcher says so, stops rank 0 and reaps both."""
    from archcalc.analysis import analyze
    from archcalc.backend.distributed import LaunchError
    from archcalc.backend.distributed import run as run_ranks
    from archcalc.spec import load

    analysis = analyze(load(str(SPECS / "mnist_dense.yaml")), batch=2)
    options = {"spec": str(SPECS / "mnist_dense.yaml"), "batch": 2, "dtype": "float32", "shard": "ddp",
               "optimizer": "sgd", "seed": 0, "device": "cpu"}
    before = set(children())
    outcome = {}

    def launch():
        try:
            run_ranks(analysis, options, 2)
        except LaunchError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=launch)
    thread.start()
    deadline = time.monotonic() + 60
    while len(set(children()) - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    ranks = sorted(set(children()) - before)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)   # started second: rank 1
    thread.join(120)
    assert not thread.is_alive()
    assert "rank 1 of 2 died (exit code -9)" in outcome["error"]
    assert "the other ranks were stopped" in outcome["error"]
    assert set(children()) <= before


STACK = """
name: stack
input: [37]
blocks:
  halves:
    layers:
      - dense: {units: 46, activation: tanh}
      - chunk: {chunks: 2, name: parts}
      - dense: {units: 23, inputs: parts.1, name: half}
      - concat: {inputs: [parts.0, half]}
layers:
  - dense: {units: 45, activation: relu}
  - repeat: {name: block, times: 3, layers: [halves]}
  - dense: 10
"""


def test_fsdp_per_rank_memory_in_one_process(tmp_path):
    """FSDP2 itself, rank 3 of 4 in this process on torch's fake process group (no communication,
    the same allocations as NCCL's; the slow tests run every rank, for real): a root (the first
    and last dense layers) and three units (block instances, a chunk inside each) whose first
    axes 46, 23 and 10 do not divide by 4, so every rank stores padded shards and the last holds
    fewer rows (to_local(): torch.chunk's, 10 rows as 3, 3, 3, 1). The replay of FSDP2's hooks
    over the memory schedule gives the rank's peak to within 4 bytes (the loss's ones_like, which
    torch.autograd.backward holds until it returns and the schedule frees after its first use)."""
    pytest.importorskip("torch.distributed.fsdp")
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from archcalc.analysis import analyze
    from archcalc.analysis.sharding import sharded_memory
    from archcalc.backend.distributed import train
    from archcalc.spec import load

    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    analysis = analyze(load(str(path)), batch=8)
    options = {"spec": str(path), "batch": 8, "dtype": "float32", "shard": "fsdp", "optimizer": "adam", "seed": 0}
    torch.distributed.init_process_group("fake", store=FakeStore(), rank=3, world_size=4)
    try:
        found = train(options, 3, 4, torch.device("cpu"))
    finally:
        torch.distributed.destroy_process_group()
    predicted = sharded_memory(analysis, "fsdp", 4, device="cpu", rank=3, backend="fake")
    assert 0 <= found.peak_bytes - predicted.total_bytes <= 4, (found.peak_bytes, predicted.total_bytes)
    assert found.start_bytes == predicted.weight_bytes + predicted.optimizer_bytes + 2 * 37 * 4  # + the batch
    assert all(rows == chunk_rows(shape, 4, 3) for shape, rows in found.shards + found.gradient_shards)
    assert sorted(found.shards)[:2] == [[[10], 1], [[10, 46], 1]]


def test_shards_unlike_the_prediction_fail_the_verification(monkeypatch):
    """A rank holding other rows than torch.chunk's (here 6 of the weight's 10 on rank 0 of 2) is
    a finding, exit code 1, not a usage error; the ranks' results are shown first."""
    from archcalc.backend import distributed

    def launch(runs, nproc, **_):
        return [[distributed.RankResult(rank, 100_000, 50_000, {"all-gather": 31_400, "reduce-scatter": 31_400},
                                        [[[10], 5], [[10, 784], 6 - rank]], [[[10], 5], [[10, 784], 5]], 1.0)
                 for rank in range(nproc)]]
    monkeypatch.setattr(distributed, "launch", launch)
    result = run(SPECS / "mnist_dense.yaml", "--nproc", 2, "--shard", "fsdp", "--batch", 2, "--device", "cpu")
    assert result.exit_code == 1, result.output
    assert "rank 0: parameter shards [[[10], 5], [[10, 784], 6]] != predicted [[[10], 5], [[10, 784], 5]]" \
        in result.output
    assert "rank 1:" not in result.output.split("error:")[-1]
