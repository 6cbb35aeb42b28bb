"""`archcalc serve` under load, and how long one edit takes for each shipped spec.

    python benchmarks/web_load.py             # print the tables
    python benchmarks/web_load.py --save      # and write benchmarks/results/web_load.md

1. Each shipped spec sent to /analyze as the editor sends it (the median of --runs): the
   analysis as the worker times it (load, analyze, the report fragment, the DOT), the round
   trip the page sees (HTTP and the worker's pipe added), and the diagram's first drawing
   (Graphviz, GET /diagram/KEY), which the page fetches after showing the table.
2. Load: --requests /analyze requests from --clients concurrent clients on localhost (each
   its own keep-alive connection), cycling through AlexNet, AlexNet with CONV1's stride 3 (an
   error answer), ResNet-18 and LeNet-5: every answer must be 200 and as expected; latency
   percentiles and throughput.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

from archcalc.fileio import write_text
from archcalc.views.server import Server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "web_load.md"


def post(connection: http.client.HTTPConnection, token: str, text: str) -> tuple[int, dict]:
    connection.request("POST", "/analyze", body=text.encode(), headers={"X-Archcalc-Token": token})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def per_spec(server: Server, runs: int) -> list[str]:
    connection = http.client.HTTPConnection(*server.server_address[:2])
    lines = ["| spec | layers | analysis in the worker: CPU (ms) | wall (ms) | round trip (ms) | "
             "diagram, first drawing (ms) |", "|---|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        text = path.read_text()
        inside, cpu, trips = [], [], []
        for _ in range(runs):
            start = time.perf_counter()
            status, answer = post(connection, server.token, text)
            trips.append((time.perf_counter() - start) * 1000)
            assert status == 200 and answer["error"] is None, (path.name, answer)
            inside.append(answer["ms"])
            cpu.append(answer["cpu_ms"])
        start = time.perf_counter()  # each spec's drawing is new: Graphviz runs
        connection.request("GET", f"/diagram/{answer['diagram']}")
        drawn = connection.getresponse()
        drawn.read()
        drawing = (time.perf_counter() - start) * 1000
        layers = answer["report"].count("<tr data-boxes=")
        worst = max(worst, statistics.median(cpu))
        lines.append(f"| {path.name} | {layers} | {statistics.median(cpu):.1f} | {statistics.median(inside):.1f} | "
                     f"{statistics.median(trips):.1f} | "
                     f"{drawing:.0f}{'' if drawn.status == 200 else ' (refused)'} |")
    connection.close()
    return lines + ["", f"The most CPU one edit takes (median): {worst:.1f} ms. On a machine shared with other work "
                        "the wall times are longer: the load average above says how shared."]


def load(server: Server, requests: int, clients: int) -> list[str]:
    alexnet = (ROOT / "specs" / "alexnet.yaml").read_text()
    texts = [(alexnet, None), (alexnet.replace("stride: 4", "stride: 3"), 16),
             ((ROOT / "specs" / "resnet18.yaml").read_text(), None), ((ROOT / "specs" / "lenet5.yaml").read_text(), None)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
        for number in counter:
            text, error_line = texts[number % len(texts)]
            start = time.perf_counter()
            try:
                status, answer = post(connection, server.token, text)
                good = status == 200 and (answer["error"] or {}).get("line") == error_line
                problem = "" if good else f"{status} {answer}"[:200]
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                if problem:
                    failures.append(problem)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return ["| requests | clients | workers | errors | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | requests/s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {len(latencies)} | {clients} | {len(server.workers.all)} | {len(failures)} | {cuts[49]:.1f} | "
            f"{cuts[89]:.1f} | {cuts[98]:.1f} | {max(latencies):.1f} | {len(latencies) / elapsed:.0f} |",
            *([""] + [f"- failure: {failure}" for failure in failures[:10]] if failures else [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="analysis processes (archcalc serve's default: 2)")
    parser.add_argument("--save", action="store_true", help=f"also write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    server = Server(None, port=0, workers=args.workers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        post(http.client.HTTPConnection(*server.server_address[:2]), server.token, server.text)  # workers warm
        spec_lines = per_spec(server, args.runs)
        load_lines = load(server, args.requests, args.clients)
    finally:
        server.shutdown()
        server.server_close()
    lines = ["# archcalc serve: one edit per shipped spec, and under load", "",
             f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, {os.cpu_count()} cores "
             f"(load average {os.getloadavg()[0]:.1f} when done: other work shared the machine); "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             f"## One edit: POST /analyze (median of {args.runs}), then the diagram", "", *spec_lines, "",
             f"## Load: {args.requests} analyze requests, {args.clients} concurrent clients on localhost", "",
             *load_lines, ""]
    text = "\n".join(lines)
    print(text, end="")
    if args.save:
        write_text(str(RESULTS), text)
    return 1 if "- failure:" in text else 0


if __name__ == "__main__":
    sys.exit(main())
