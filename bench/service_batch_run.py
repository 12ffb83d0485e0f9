"""Orchestration overhead: a 1000-line batch through the real server, submit to COMPLETED with the results
file written and the batch webhook delivered, with an engine that costs nothing; SQLite and PostgreSQL.

Usage: python bench/service_batch_run.py [--runs 3] [--lines 1000] [--workers 8] [--databases sqlite,postgres]

The server is ``serve`` with the benchmark-only instant engine (``bench/bench_server.py``: it hands back a
prepared 1 s mp4 at once), ``LIPSYNC_WORKER_COUNT=--workers``, webhooks to 127.0.0.1 allowed. The batch is
the dry-run benchmark's campaign file (1000 lines of presigned-URL-shaped requests, about 5 MB; the engine
fetches nothing). The clock runs from just before ``POST /v2/batch`` to the arrival of the batch webhook
at a receiver in this process; the results file is then fetched and checked (one COMPLETED line per input
line, in input order). Each run gets a fresh database (a new SQLite file; a new PostgreSQL database
``bench_<hex>`` on postgresql://postgres@127.0.0.1:5432, dropped after) and a fresh server.

Baseline, measured in the same run on another fresh database of the same kind: the store floor, i.e. the
same file through ``create_batch`` then every line claimed and finished by direct ``claim_next`` and
``finish`` calls in this process, one after the other: the database work per line with no HTTP, scheduler,
executor, output files, results file or webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from service_harness import (
    CpuWindow,
    bench_server_command,
    campaign_file,
    describe_machine,
    fresh_database,
    median,
    multipart,
    pairwise_ratio,
    profiled,
    running,
    webhook_receiver,
)

from lipsync_api.api.runtime import service_limits
from lipsync_api.config import Settings
from lipsync_api.domain.batch_service import create_batch
from lipsync_api.store import Store
from lipsync_api.store.database import sqlite_url
from lipsync_api.store.migrate import upgrade_to_head
from lipsync_api.store.models import GenerationStatus
from lipsync_api.store.types import utc_now

TARGET_MS_PER_LINE = 5.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


async def _floor(url: str, data: bytes, settings: Settings) -> float:
    await upgrade_to_head(url)
    store = Store.open(url)
    try:
        org = await store.organizations.create("floor", "enterprise")
        limits = service_limits(settings)
        start = time.perf_counter()
        await create_batch(store, org, data, None, limits, utc_now())
        done = 0
        while (claim := await store.leases.claim_next("floor", 60.0, utc_now())) is not None:
            finished = await store.leases.finish(
                claim.generation.id,
                "floor",
                claim.attempt,
                GenerationStatus.COMPLETED,
                now=utc_now(),
                engine="bench",
                output_key="outputs/floor.mp4",
                output_duration=1.0,
            )
            done += int(finished)
        seconds = time.perf_counter() - start
    finally:
        await store.close()
    if done != data.count(b"\n"):
        raise RuntimeError(f"the floor finished {done} lines")
    return seconds


def store_floor(kind: str, data: bytes, settings: Settings) -> float:
    """Seconds for the store floor on a fresh database of ``kind``."""
    with fresh_database(kind) as url, tempfile.TemporaryDirectory(prefix="floor-") as folder:
        return asyncio.run(_floor(url or sqlite_url(Path(folder) / "floor.db"), data, settings))


def check_results(client: httpx.Client, batch: dict[str, Any], data: bytes) -> None:
    """The results file: one COMPLETED line per input line, in input order."""
    response = client.get(batch["outputUrl"], follow_redirects=True)
    response.raise_for_status()
    lines = [json.loads(line) for line in response.text.splitlines()]
    wanted = [json.loads(line)["request_id"] for line in data.decode().splitlines()]
    if [line["request_id"] for line in lines] != wanted:
        raise RuntimeError("the results file does not list the input lines in input order")
    statuses = {line["response"]["status"] for line in lines}
    if statuses != {"COMPLETED"}:
        raise RuntimeError(f"results file statuses: {statuses}")


def server_run(kind: str, data: bytes, work: Path, workers: int, spy: Path | None = None) -> dict[str, float]:
    """One batch through a fresh server on a fresh database: seconds per phase, server CPU share."""
    with fresh_database(kind) as url, webhook_receiver() as hooks:
        env = {"LIPSYNC_WORKER_COUNT": str(workers), "LIPSYNC_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"}
        if url:
            env["LIPSYNC_DATABASE_URL"] = url
        data_dir = work / f"{kind}-{time.time_ns()}"
        body, headers = multipart({"webhook_url": hooks.url}, data)
        with (
            running(bench_server_command("instant"), data_dir, env) as server,
            httpx.Client(headers=server.headers(), timeout=120) as client,
        ):
            cpu = CpuWindow({"server": server.pid})
            with profiled(server.pid, spy):
                cpu.start()
                start = time.time()
                response = client.post(f"{server.base}/v2/batch", content=body, headers=headers)
                created = time.time()
                if response.status_code != 201:
                    raise RuntimeError(f"create answered {response.status_code}: {response.text[:500]}")
                batch_id = response.json()["id"]
                arrival, batch = hooks.wait_for(
                    lambda b: b.get("id") == batch_id and b.get("status") in TERMINAL, timeout=600
                )
                shares = cpu.stop()
            if batch["status"] != "COMPLETED" or batch["metrics"]["success_count"] != data.count(b"\n"):
                raise RuntimeError(f"batch ended {batch['status']} with {batch['metrics']}")
            check_results(client, batch, data)
        ended = _epoch(batch["completed_at"])
        return {
            "total": arrival - start,
            "create": created - start,
            "run": ended - created,
            "webhook_lag": arrival - ended,
            "server_cpu": shares["server"],
            "server_cpu_ms_per_line": shares["server"] * (arrival - start) * 1000 / data.count(b"\n"),
            "machine_cpu": shares["machine"],
        }


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=5_100_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-bench-batch-run"))
    parser.add_argument("--skip-floor", action="store_true", help="no baseline (to compare servers)")
    parser.add_argument("--py-spy", type=Path, help="profile each database's first server run (<path>.<db>)")
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    kinds = args.databases.split(",")
    data = campaign_file(
        args.lines,
        "https://media.example.com/campaign/template.mp4",
        lambda i: f"https://media.example.com/campaign/voice_{i:05d}.wav",
        args.bytes,
    )
    settings = Settings(data_dir=args.work / "unused")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for run in range(args.runs):
        for kind in kinds:
            floor = float("nan") if args.skip_floor else store_floor(kind, data, settings)
            spy = args.py_spy.with_suffix(f".{kind}.txt") if args.py_spy and run == 0 else None
            figures = server_run(kind, data, args.work, args.workers, spy) | {"floor": floor}
            results[kind].append(figures)
            print(
                f"run {run + 1} {kind}: total {figures['total']:.2f} s "
                f"({figures['total'] / args.lines * 1000:.2f} ms/line; create {figures['create']:.2f} s, "
                f"run {figures['run']:.2f} s, webhook {figures['webhook_lag']:.2f} s after the end), "
                f"floor {floor:.2f} s, server CPU {figures['server_cpu']:.2f} cores "
                f"({figures['server_cpu_ms_per_line']:.2f} ms/line), "
                f"machine {figures['machine_cpu']:.2f}",
                flush=True,
            )
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(
        f"\n## Batch of {args.lines} lines, instant engine, {args.workers} workers "
        f"({args.runs} runs, medians)"
    )
    print(
        "| database | submit → webhook | per line | store floor | / floor | create | run | webhook lag "
        "| server CPU | server CPU per line | target ≤ 5 ms/line |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, rows in results.items():

        def m(key: str, rows: list[dict[str, float]] = rows) -> float:
            return median([row[key] for row in rows])

        per_line = m("total") / args.lines * 1000
        ratio = pairwise_ratio([r["total"] for r in rows], [r["floor"] for r in rows])
        verdict = "met" if per_line <= TARGET_MS_PER_LINE else "missed"
        print(
            f"| {kind} | {m('total'):.2f} s | {per_line:.2f} ms | {m('floor'):.2f} s "
            f"({m('floor') / args.lines * 1000:.2f} ms/line) | {ratio:.2f}x | {m('create'):.2f} s "
            f"| {m('run'):.2f} s | {m('webhook_lag'):.2f} s | {m('server_cpu'):.2f} cores "
            f"| {m('server_cpu_ms_per_line'):.2f} ms | {verdict} |"
        )


if __name__ == "__main__":
    main()
