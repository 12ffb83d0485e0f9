"""Fairness: the latency of an interactive generation sent while a 1000-line batch runs, against the same
generation on the idle server, with an engine of fixed duration.

Usage: python bench/service_fairness.py [--runs 3] [--samples 5] [--workers 2] [--sleep-ms 50]
                                        [--database sqlite|postgres]

The server is ``serve`` with the benchmark-only engine (``bench/bench_server.py``) sleeping ``--sleep-ms``
per generation on ``--workers`` workers. Each run starts a fresh server and database, then measures,
interleaved sample by sample: idle (nothing else queued), busy (a 1000-line batch submitted first and
running: every worker is on one of its lines; after the sample it is canceled and its results file
awaited, so the next idle sample finds the server idle). A sample is one ``POST /v2/generate``, sent
after a random pause of up to 1 s (the scheduler's poll interval) so that it arrives at a random point
of the poll cycle, then ``GET /v2/generate/{id}`` every 10 ms until COMPLETED; its latency is from
sending the POST to reading COMPLETED. The server's own timestamps split it into queue wait (createdAt
to startedAt) and run (startedAt to completedAt). The batch is checked to be still running after each
busy sample.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from service_harness import (
    bench_server_command,
    campaign_file,
    describe_machine,
    fresh_database,
    median,
    multipart,
    running,
)

TARGET_RATIO = 1.5
POLL_SECONDS = 0.01
JITTER_SECONDS = 1.0  # the scheduler's poll interval: samples arrive at a random point of its cycle
GENERATION = {
    "model": "lipsync-2",
    "input": [
        {"type": "video", "url": "https://media.example.com/interactive/face.mp4"},
        {"type": "audio", "url": "https://media.example.com/interactive/speech.wav"},
    ],
}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def sample(client: httpx.Client, base: str, rng: random.Random) -> dict[str, float]:
    """One interactive generation: client latency, and the server's queue wait and run time (seconds).

    It is sent after a random pause, so that it arrives at a random point of the scheduler's poll cycle
    (sent right after a round, as a fixed sequence would, it would always wait the whole interval).
    """
    time.sleep(rng.uniform(0, JITTER_SECONDS))
    start = time.perf_counter()
    response = client.post(f"{base}/v2/generate", json=GENERATION)
    if response.status_code != 201:
        raise RuntimeError(f"generate answered {response.status_code}: {response.text[:300]}")
    generation_id = response.json()["id"]
    while True:
        generation = client.get(f"{base}/v2/generate/{generation_id}").json()
        if generation["status"] not in ("PENDING", "PROCESSING"):
            break
        time.sleep(POLL_SECONDS)
    latency = time.perf_counter() - start
    if generation["status"] != "COMPLETED":
        raise RuntimeError(f"generation ended {generation['status']}: {generation.get('error')}")
    created, started = _epoch(generation["createdAt"]), _epoch(generation["startedAt"])
    return {"latency": latency, "wait": started - created, "run": _epoch(generation["completedAt"]) - started}


def batch_state(client: httpx.Client, base: str, batch_id: str) -> dict[str, Any]:
    return client.get(f"{base}/v2/batch/{batch_id}").json()  # type: ignore[no-any-return]


def one_run(args: argparse.Namespace, data: bytes, run: int) -> dict[str, list[dict[str, float]]]:
    env = {"LIPSYNC_WORKER_COUNT": str(args.workers)}
    found: dict[str, list[dict[str, float]]] = {"idle": [], "busy": []}
    with fresh_database(args.database) as url:
        if url:
            env["LIPSYNC_DATABASE_URL"] = url
        command = bench_server_command("sleep", args.sleep_ms)
        with (
            running(command, args.work / f"{args.database}-{time.time_ns()}", env) as server,
            httpx.Client(headers=server.headers(), timeout=60) as client,
        ):
            rng = random.Random(run)
            sample(client, server.base, rng)  # warm-up
            body, headers = multipart({}, data)
            for _ in range(args.samples):
                found["idle"].append(sample(client, server.base, rng))
                response = client.post(f"{server.base}/v2/batch", content=body, headers=headers)
                response.raise_for_status()
                batch_id = response.json()["id"]
                while batch_state(client, server.base, batch_id)["metrics"]["success_count"] < args.workers:
                    time.sleep(0.02)
                found["busy"].append(sample(client, server.base, rng))
                batch = batch_state(client, server.base, batch_id)
                if batch["status"] != "PROCESSING" or batch["metrics"]["pending_count"] == 0:
                    raise RuntimeError(f"the batch was not running any more: {batch}")
                client.post(f"{server.base}/v2/batch/{batch_id}/cancel").raise_for_status()
                while not batch_state(client, server.base, batch_id)["outputUrl"]:
                    time.sleep(0.02)  # idle again: the canceled batch's results file is written
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=5, help="idle/busy sample pairs per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep-ms", type=float, default=50.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-bench-fairness"))
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    hosted = "https://media.example.com/campaign"
    data = campaign_file(1000, f"{hosted}/template.mp4", lambda i: f"{hosted}/voice_{i:05d}.wav", 5_100_000)
    results: dict[str, list[dict[str, float]]] = {"idle": [], "busy": []}
    for run in range(args.runs):
        found = one_run(args, data, run)
        for state, rows in found.items():
            results[state] += rows
            print(
                f"run {run + 1} {state}: latency (ms) "
                + ", ".join(f"{row['latency'] * 1000:.0f}" for row in rows)
                + "; queue wait (ms) "
                + ", ".join(f"{row['wait'] * 1000:.0f}" for row in rows),
                flush=True,
            )
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(
        f"\n## Interactive generation, {args.sleep_ms:g} ms engine, {args.workers} workers, {args.database} "
        f"({args.runs} runs x {args.samples} samples per state, medians)"
    )
    print("| state | latency | queue wait (server) | run (server) |\n|---|---|---|---|")
    for state, rows in results.items():
        figures = [median([row[key] for row in rows]) * 1000 for key in ("latency", "wait", "run")]
        print(f"| {state} | {figures[0]:.0f} ms | {figures[1]:.0f} ms | {figures[2]:.0f} ms |")
    ratios = [b["latency"] / i["latency"] for b, i in zip(results["busy"], results["idle"], strict=True)]
    ratio = median(ratios)
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(
        f"busy / idle latency (median of pairwise ratios): {ratio:.2f}x (target ≤ {TARGET_RATIO}x: {verdict})"
    )


if __name__ == "__main__":
    main()
