"""Batch dry run: a real ``lipsync-api serve`` answering ``POST /v2/batch dry_run=true`` for a 1000-line,
about 5 MB campaign file, against a bare in-process ``validate_batch_file`` of the same bytes.

Usage: python bench/service_dry_run.py [--runs 5] [--lines 1000] [--bytes 5100000] [--media ../shared/media]

The file is a personalised-video campaign: one template video and 1000 distinct voice tracks, each a
presigned-URL-shaped link to a media host on 127.0.0.1 (in this process; it honours Range). The dry run
estimates frames and cost, so the server probes every distinct URL (1001 per file). Each run uses URLs
it has not used before, then sends the same file a second time:

- cold: the server as it runs by default, its probe cache empty for these URLs (1001 probes);
- cached: the same file again, every URL answered from the probe cache (no probe at all);
- baseline: ``validate_batch_file`` in this process on the same bytes, measured just before.

One server serves every run (started once, warmed up on a small file first); each figure is the median
over runs, and each ratio the median of the run-by-run ratios.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx
from service_harness import (
    CpuWindow,
    MediaHost,
    campaign_file,
    describe_machine,
    media_host,
    median,
    multipart,
    pairwise_ratio,
    profiled,
    real_serve_command,
    running,
)

from lipsync_api.api.runtime import service_limits
from lipsync_api.config import Settings
from lipsync_api.domain.batch_service import validate_batch_file

TARGET_RATIO = 1.5
SETTLE_SECONDS = 1.0  # after a cold run, for work the server finishes after answering (logs, clean-up)


def dry_run(client: httpx.Client, base: str, data: bytes) -> tuple[float, dict[str, Any]]:
    """Seconds for one dry run (request sent to answer read) and the answer."""
    body, headers = multipart({"dry_run": "true"}, data)
    start = time.perf_counter()
    response = client.post(f"{base}/v2/batch", content=body, headers=headers)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"dry run answered {response.status_code}: {response.text[:500]}")
    return seconds, response.json()


def cached_dry_run(client: httpx.Client, base: str, data: bytes, host: MediaHost) -> float:
    """Seconds for a dry run whose URLs are all in the probe cache: the file is sent again until a dry run
    makes no media request (a cold run that ran out of its time budget leaves URLs unprobed)."""
    for attempt in range(1, 11):
        before = host.requests
        seconds, answer = dry_run(client, base, data)
        if host.requests == before:
            print(
                f"  cached (send {attempt}): {seconds * 1000:.0f} ms, frames {answer['estimatedFrameCount']}"
            )
            return seconds
        print(f"  send {attempt}: {seconds * 1000:.0f} ms, {host.requests - before} media requests")
    raise RuntimeError("the probe cache never covered every URL")


def baseline(data: bytes, settings: Settings) -> float:
    """Seconds for a bare parse and validation of the file, in this process."""
    limits = service_limits(settings)
    start = time.perf_counter()
    parsed = validate_batch_file(data, limits)
    seconds = time.perf_counter() - start
    assert len(parsed.lines) > 0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=5_100_000, help="about this size (limit: 5 MiB)")
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-bench-dry-run"))
    parser.add_argument("--py-spy", type=Path, help="profile the server's first cold dry run into this file")
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    files = {"v": args.media / "latentsync_demo1_video.mp4", "a": args.media / "sadtalker_deyu_de.wav"}
    settings = Settings(data_dir=args.work / "unused")
    env = {"LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true"}
    figures: dict[str, list[float]] = {
        key: [] for key in ("baseline", "cold", "cached", "cold_cpu", "media_requests", "media_mb")
    }
    with (
        media_host(files) as host,
        running(real_serve_command(), args.work / f"data-{time.time_ns()}", env) as server,
        httpx.Client(headers=server.headers(), timeout=300) as client,
    ):

        def campaign(tag: str, lines: int) -> bytes:
            video = f"{host.base}/v/{tag}/template.mp4"
            return campaign_file(lines, video, lambda i: f"{host.base}/a/{tag}/voice_{i:05d}.wav", args.bytes)

        warm = campaign("warmup", 20)
        dry_run(client, server.base, warm)
        baseline(warm, settings)
        for run in range(args.runs):
            data = campaign(f"run{run}-{time.time_ns()}", args.lines)
            figures["baseline"].append(baseline(data, settings))
            requests_before, bytes_before = host.requests, host.bytes_sent
            cpu = CpuWindow({"server": server.pid})
            with profiled(server.pid, args.py_spy if run == 0 else None):
                cpu.start()
                cold, answer = dry_run(client, server.base, data)
                shares = cpu.stop()
            figures["cold"].append(cold)
            figures["cold_cpu"].append(shares["server"])
            probes, sent = host.requests - requests_before, host.bytes_sent - bytes_before
            figures["media_requests"].append(probes)
            figures["media_mb"].append(sent / 1e6)
            print(
                f"run {run + 1}: {len(data) / 1e6:.2f} MB, {answer['total_generations']} lines; "
                f"baseline {figures['baseline'][-1] * 1000:.0f} ms; cold {cold * 1000:.0f} ms "
                f"({probes} media requests, {sent / 1e6:.0f} MB, server CPU {shares['server']:.2f} cores, "
                f"machine {shares['machine']:.2f}), frames {answer['estimatedFrameCount']}, "
                f"warnings: {answer['warnings'][-1] if answer['warnings'] else 'none'}",
                flush=True,
            )
            time.sleep(SETTLE_SECONDS)
            figures["cached"].append(cached_dry_run(client, server.base, data, host))
    report(figures, args.runs)


def report(figures: dict[str, list[float]], runs: int) -> None:
    base = median(figures["baseline"])
    print(f"\n## Batch dry run, {runs} runs (medians; ratios are medians of per-run ratios)")
    print("| figure | median | / baseline | target |\n|---|---|---|---|")
    print(f"| baseline: in-process validate_batch_file | {base * 1000:.0f} ms | 1.00x | |")
    for key, name in (
        ("cold", "server dry run, cold probe cache (default)"),
        ("cached", "server dry run, every URL in the probe cache"),
    ):
        ratio = pairwise_ratio(figures[key], figures["baseline"])
        verdict = "met" if ratio <= TARGET_RATIO else "missed"
        print(
            f"| {name} | {median(figures[key]) * 1000:.0f} ms | {ratio:.2f}x | ≤ {TARGET_RATIO}x: {verdict} |"
        )
    print(f"| server CPU during the cold dry run | {median(figures['cold_cpu']):.2f} cores | | |")
    print(
        f"| media read by the cold dry run | {median(figures['media_requests']):.0f} requests, "
        f"{median(figures['media_mb']):.0f} MB | | |"
    )


if __name__ == "__main__":
    main()
