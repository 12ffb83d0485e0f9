"""Resumable downloads (client/download.py): names, whole-file-or-nothing, skipping what is complete."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from lipsync_api.client import ApiError
from lipsync_api.client.download import (
    MANIFEST_NAME,
    Job,
    Outcome,
    download_all,
    fetch_to,
    output_name,
)

FILES = {f"/f/{n}.mp4": f"video {n} ".encode() * (n + 1) for n in range(5)}


class Host:
    """A MockTransport host serving FILES and counting requests per path; some paths misbehave."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            self.counts[path] += 1
        if path == "/short":
            return httpx.Response(200, content=b"abc", headers={"content-length": "10"})
        if path == "/expired":
            body = {"statusCode": 403, "message": "this URL has expired", "errorCode": "url_expired"}
            return httpx.Response(403, json=body)
        if path not in FILES:
            return httpx.Response(404, json={"statusCode": 404, "message": "file not found"})
        return httpx.Response(200, content=FILES[path])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def jobs(source_prefix: str = "g") -> list[Job]:
    return [Job(f"line{n}.mp4", f"{source_prefix}{n}", f"http://media.test/f/{n}.mp4") for n in range(5)]


# --- names ------------------------------------------------------------------------------------------


def test_a_safe_request_id_is_the_name() -> None:
    assert output_name("video_001") == "video_001.mp4"
    assert output_name("Clip-2.take.3") == "Clip-2.take.3.mp4"


@pytest.mark.parametrize(
    "request_id", ["a/b", "../../etc/passwd", ".", "..", ".hidden", "sp ace", "é", "x" * 255]
)
def test_an_unsafe_request_id_is_cleaned_and_tagged(request_id: str) -> None:
    name = output_name(request_id)
    assert name.endswith(".mp4") and len(name) <= 120
    assert "/" not in name and not name.startswith(".")
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in name)


def test_ids_that_clean_alike_get_different_names() -> None:
    names = {output_name(i) for i in ["a/b", "a_b", "a b", "a\\b", "x" * 200, "x" * 201]}
    assert len(names) == 6


def test_a_lone_surrogate_does_not_break_naming() -> None:
    assert output_name("\ud800").endswith(".mp4")


# --- one file ---------------------------------------------------------------------------------------


def test_fetch_writes_the_whole_file_and_leaves_no_part(tmp_path: Path) -> None:
    with Host().client() as client:
        size = fetch_to(client, "http://media.test/f/3.mp4", tmp_path / "out.mp4")
    assert (tmp_path / "out.mp4").read_bytes() == FILES["/f/3.mp4"]
    assert size == len(FILES["/f/3.mp4"])
    assert not (tmp_path / "out.mp4.part").exists()


def test_a_short_body_never_reaches_the_final_name(tmp_path: Path) -> None:
    with Host().client() as client, pytest.raises(OSError, match="received 3 of 10 bytes"):
        fetch_to(client, "http://media.test/short", tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_an_error_status_is_the_servers_error(tmp_path: Path) -> None:
    with Host().client() as client, pytest.raises(ApiError) as caught:
        fetch_to(client, "http://media.test/expired", tmp_path / "out.mp4")
    assert (caught.value.status_code, caught.value.error_code) == (403, "url_expired")
    assert caught.value.messages == ["this URL has expired"]
    assert not (tmp_path / "out.mp4").exists()


# --- many files, resumed ----------------------------------------------------------------------------


def test_a_rerun_fetches_nothing_that_is_complete(tmp_path: Path) -> None:
    host = Host()
    with host.client() as client:
        first = download_all(client, jobs(), tmp_path, workers=3)
        second = download_all(client, jobs(), tmp_path, workers=3)
    assert [r.outcome for r in first] == [Outcome.DOWNLOADED] * 5
    assert [r.outcome for r in second] == [Outcome.SKIPPED] * 5
    assert set(host.counts.values()) == {1}
    for n in range(5):
        assert (tmp_path / f"line{n}.mp4").read_bytes() == FILES[f"/f/{n}.mp4"]
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["line2.mp4"] == {"id": "g2", "size": len(FILES["/f/2.mp4"])}


def test_an_interrupted_run_resumes_with_only_what_is_missing_or_incomplete(tmp_path: Path) -> None:
    host = Host()
    with host.client() as client:
        download_all(client, jobs(), tmp_path)
        (tmp_path / "line0.mp4").unlink()  # deleted
        (tmp_path / "line1.mp4").rename(tmp_path / "line1.mp4.part")  # as if cut off before the rename
        (tmp_path / "line2.mp4").write_bytes(b"trunc")  # damaged after the fact
        untouched = (tmp_path / "line3.mp4").stat().st_mtime_ns
        resumed = download_all(client, jobs(), tmp_path)
    outcomes = {r.job.name: r.outcome for r in resumed}
    assert outcomes == {
        "line0.mp4": Outcome.DOWNLOADED,
        "line1.mp4": Outcome.DOWNLOADED,
        "line2.mp4": Outcome.DOWNLOADED,
        "line3.mp4": Outcome.SKIPPED,
        "line4.mp4": Outcome.SKIPPED,
    }
    assert host.counts == Counter({"/f/0.mp4": 2, "/f/1.mp4": 2, "/f/2.mp4": 2, "/f/3.mp4": 1, "/f/4.mp4": 1})
    assert (tmp_path / "line3.mp4").stat().st_mtime_ns == untouched
    assert (tmp_path / "line2.mp4").read_bytes() == FILES["/f/2.mp4"]
    assert not list(tmp_path.glob("*.part"))


def test_a_file_of_another_source_with_the_same_name_is_replaced(tmp_path: Path) -> None:
    host = Host()
    with host.client() as client:
        download_all(client, jobs("old"), tmp_path)
        again = download_all(client, jobs("new"), tmp_path)
    assert {r.outcome for r in again} == {Outcome.DOWNLOADED}


def test_a_file_without_a_manifest_entry_is_fetched(tmp_path: Path) -> None:
    (tmp_path / "line0.mp4").write_bytes(FILES["/f/0.mp4"])  # right bytes, but nothing says so
    with Host().client() as client:
        result = download_all(client, jobs()[:1], tmp_path)
    assert result[0].outcome is Outcome.DOWNLOADED


def test_one_failure_is_reported_and_the_rest_still_arrive(tmp_path: Path) -> None:
    broken = [*jobs(), Job("gone.mp4", "g9", "http://media.test/f/missing.mp4")]
    with Host().client() as client:
        results = download_all(client, broken, tmp_path)
    assert [r.job.name for r in results] == [job.name for job in broken]  # input order
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    assert [(r.job.name, r.error) for r in failed] == [("gone.mp4", "file not found")]
    assert not (tmp_path / "gone.mp4").exists()
    assert sum(r.outcome is Outcome.DOWNLOADED for r in results) == 5


def test_local_files_are_copied_and_skipped_alike(tmp_path: Path) -> None:
    source = tmp_path / "store" / "out.mp4"
    source.parent.mkdir()
    source.write_bytes(b"local output")
    folder = tmp_path / "out"
    job = Job("clip.mp4", "g1", str(source))
    first = download_all(None, [job], folder)
    second = download_all(None, [job], folder)
    assert (first[0].outcome, second[0].outcome) == (Outcome.DOWNLOADED, Outcome.SKIPPED)
    assert (folder / "clip.mp4").read_bytes() == b"local output"


def test_a_corrupt_manifest_means_fetching_again(tmp_path: Path) -> None:
    host = Host()
    with host.client() as client:
        download_all(client, jobs()[:2], tmp_path)
        (tmp_path / MANIFEST_NAME).write_text("{not json")
        again = download_all(client, jobs()[:2], tmp_path)
    assert {r.outcome for r in again} == {Outcome.DOWNLOADED}
