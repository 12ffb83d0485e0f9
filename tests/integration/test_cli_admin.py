"""``lipsync-api orgs`` and ``keys``: create an organization, issue, list and revoke keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lipsync_api.cli.main import app

runner = CliRunner()


def test_orgs_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LIPSYNC_DATABASE_URL", raising=False)
    created = runner.invoke(app, ["orgs", "create", "--name", "acme", "--plan", "growth"])
    assert created.exit_code == 0, created.output
    org_id = re.search(r"organization id: (\S+)", created.output)
    assert org_id and "whsec_" in created.output
    issued = runner.invoke(app, ["keys", "create", "--org", org_id.group(1), "--name", "ci"])
    assert issued.exit_code == 0, issued.output
    key_id = re.search(r"key id: (\S+)", issued.output)
    assert key_id and "API key (shown once): lsk_" in issued.output
    listed = runner.invoke(app, ["keys", "list", "--org", org_id.group(1)])
    assert key_id.group(1) in listed.output and "revoked -" in listed.output
    assert runner.invoke(app, ["keys", "revoke", key_id.group(1)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", key_id.group(1)]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--org", "nope"]).exit_code == 1
