"""Read load: ``GET /v2/batch/{id}`` from a load generator on loopback while a 1000-line batch runs,
against the same load on the idle server.

Usage: python bench/service_read_load.py [--runs 3] [--seconds 5] [--connections 16]
           [--client auto|wrk|python] [--workers 4] [--sleep-ms 100] [--database sqlite|postgres]

The server is ``serve`` with the benchmark-only engine (``bench/bench_server.py``) sleeping ``--sleep-ms``
per line on ``--workers`` workers, so a 1000-line batch keeps the scheduler claiming and recording lines
(at most workers / sleep lines a second) for the whole measurement. Each run starts a fresh server and
database, then measures, interleaved: idle (a finished 1-line batch is read; nothing runs), then busy (the
1000-line batch is read while it runs; it is checked to be still running at the end, then canceled).

The client is ``wrk`` (Debian package ``wrk``: one thread, keep-alive connections, C) when installed,
else a Python asyncio keep-alive client in a process of its own; both run on this machine and take CPU
from the server, so the client's CPU share is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from service_harness import (
    API_KEY,
    CpuWindow,
    bench_server_command,
    campaign_file,
    describe_machine,
    fresh_database,
    median,
    multipart,
    running,
)

TARGET_RPS, TARGET_P99_MS = 1000.0, 50.0
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_load(url: str, connections: int, seconds: float) -> dict[str, float]:
    """Run wrk; requests/s, latency percentiles (ms), errors."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-H",
        f"x-api-key: {API_KEY}",
    ]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        figures[f"p{pct}"] = float(found[1]) * _UNITS[found[2]] if found else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["non_2xx"] = float(non2xx[1]) if non2xx else 0.0
    figures["timeouts"] = float(sockets[4]) if sockets else 0.0  # no answer within wrk's 2 s
    figures["errors"] = figures["non_2xx"] + (sum(map(int, sockets.groups())) if sockets else 0)
    figures["requests"] = float(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    return figures


async def _python_load(host: str, port: int, path: str, connections: int, seconds: float) -> dict[str, Any]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {API_KEY}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head)[1])  # type: ignore[index]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 200")
        writer.close()

    start = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return {"latencies": latencies, "errors": errors, "wall": time.monotonic() - start}


def python_child(argv: list[str]) -> None:
    """The Python client, run in its own process: prints its figures as JSON."""
    host, port, path, connections, seconds = argv[0], int(argv[1]), argv[2], int(argv[3]), float(argv[4])
    result = asyncio.run(_python_load(host, port, path, connections, seconds))
    latencies = sorted(result["latencies"])
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    figures = {"rps": len(latencies) / result["wall"], "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99)}
    print(json.dumps(figures | {"errors": result["errors"], "requests": len(latencies)}))


def python_load(url: str, connections: int, seconds: float) -> dict[str, float]:
    parts = httpx.URL(url)
    args = [parts.host, str(parts.port), parts.raw_path.decode(), str(connections), str(seconds)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(client: str, url: str, connections: int, seconds: float, server_pid: int) -> dict[str, float]:
    """One load window: the client's figures plus CPU shares (client, server, whole machine)."""
    cpu = CpuWindow({"server": server_pid})
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    cpu.start()
    figures = (wrk_load if client == "wrk" else python_load)(url, connections, seconds)
    shares = cpu.stop()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - children.ru_utime + after.ru_stime - children.ru_stime) / wall
    server_ms = shares["server"] * wall * 1000 / max(figures["requests"], 1)
    return figures | {
        "client_cpu": client_cpu,
        "server_cpu": shares["server"],
        "server_cpu_ms_per_request": server_ms,
        "machine": shares["machine"],
    }


def wait_batch(
    client: httpx.Client, base: str, batch_id: str, done: Any, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.get(f"{base}/v2/batch/{batch_id}").json()
        if done(batch):
            return batch
        time.sleep(0.05)
    raise TimeoutError(f"batch {batch_id} did not reach the wanted state")


def succeeded(client: httpx.Client, base: str, batch_id: str) -> int:
    return int(client.get(f"{base}/v2/batch/{batch_id}").json()["metrics"]["success_count"])


def one_run(
    args: argparse.Namespace, client_kind: str, big: bytes, small: bytes
) -> dict[str, dict[str, float]]:
    env = {"LIPSYNC_WORKER_COUNT": str(args.workers)}
    with fresh_database(args.database) as url:
        if url:
            env["LIPSYNC_DATABASE_URL"] = url
        command = bench_server_command("sleep", args.sleep_ms)
        with (
            running(command, args.work / f"{args.database}-{time.time_ns()}", env) as server,
            httpx.Client(headers=server.headers(), timeout=60) as client,
        ):

            def submit(data: bytes) -> str:
                body, headers = multipart({}, data)
                response = client.post(f"{server.base}/v2/batch", content=body, headers=headers)
                response.raise_for_status()
                return str(response.json()["id"])

            idle_id = submit(small)
            wait_batch(client, server.base, idle_id, lambda b: b["status"] == "COMPLETED")
            load = (args.connections, args.seconds, server.pid)
            idle = measure(client_kind, f"{server.base}/v2/batch/{idle_id}", *load)
            busy_id = submit(big)
            wait_batch(client, server.base, busy_id, lambda b: b["metrics"]["success_count"] >= args.workers)
            before = succeeded(client, server.base, busy_id)
            time.sleep(args.seconds)  # the batch's own pace, with no reads
            unloaded = (succeeded(client, server.base, busy_id) - before) / args.seconds
            before = succeeded(client, server.base, busy_id)
            busy = measure(client_kind, f"{server.base}/v2/batch/{busy_id}", *load)
            batch = client.get(f"{server.base}/v2/batch/{busy_id}").json()
            if batch["status"] != "PROCESSING":
                raise RuntimeError(f"the batch ended ({batch['status']}) before the busy window did")
            busy["lines_per_s"] = (batch["metrics"]["success_count"] - before) / args.seconds
            busy["lines_per_s_unloaded"] = unloaded
            client.post(f"{server.base}/v2/batch/{busy_id}/cancel").raise_for_status()
    return {"idle": idle, "busy": busy}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        python_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sleep-ms", type=float, default=100.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-bench-read-load"))
    args = parser.parse_args()
    client_kind = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
    print(describe_machine(), flush=True)
    print(f"client: {client_kind}, {args.connections} connections, {args.seconds:g} s windows", flush=True)
    hosted = "https://media.example.com/campaign"
    big = campaign_file(1000, f"{hosted}/template.mp4", lambda i: f"{hosted}/voice_{i:05d}.wav", 5_100_000)
    small = campaign_file(1, f"{hosted}/template.mp4", lambda i: f"{hosted}/voice_{i:05d}.wav", 5_000)
    results: dict[str, list[dict[str, float]]] = {"idle": [], "busy": []}
    for run in range(args.runs):
        figures = one_run(args, client_kind, big, small)
        for state, row in figures.items():
            results[state].append(row)
            print(f"run {run + 1} {state}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    report(results, args, client_kind)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, client_kind: str) -> None:
    print(
        f"\n## GET /v2/batch/{{id}}, {client_kind}, {args.connections} connections, {args.runs} x "
        f"{args.seconds:g} s per state, {args.database} (medians)"
    )
    print(
        "| state | requests/s | p50 | p90 | p99 | errors | client CPU | server CPU | server CPU per request "
        "| machine busy | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for state, rows in results.items():

        def m(key: str, rows: list[dict[str, float]] = rows) -> float:
            return median([row[key] for row in rows])

        errors = sum(row["errors"] for row in rows)
        met = m("rps") >= TARGET_RPS and m("p99") < TARGET_P99_MS and errors == 0
        print(
            f"| {state} | {m('rps'):.0f} | {m('p50'):.1f} ms | {m('p90'):.1f} ms | {m('p99'):.1f} ms "
            f"| {errors:.0f} | {m('client_cpu'):.2f} | {m('server_cpu'):.2f} "
            f"| {m('server_cpu_ms_per_request'):.2f} ms | {m('machine'):.2f} "
            f"| {'met' if met else 'missed'} |"
        )
    ratio = median([b["rps"] / i["rps"] for b, i in zip(results["busy"], results["idle"], strict=True)])
    print(f"busy / idle requests/s (median of per-run ratios): {ratio:.2f}x")
    lines = median([row["lines_per_s"] for row in results["busy"]])
    unloaded = median([row["lines_per_s_unloaded"] for row in results["busy"]])
    print(
        f"batch progress: {lines:.1f} lines/s during the busy windows, {unloaded:.1f} lines/s without reads"
    )
    timeouts = sum(row.get("timeouts", 0) for rows in results.values() for row in rows)
    non_2xx = sum(row.get("non_2xx", 0) for rows in results.values() for row in rows)
    print(f"errors: {non_2xx:.0f} non-2xx answers, {timeouts:.0f} requests without an answer within 2 s")


if __name__ == "__main__":
    main()
