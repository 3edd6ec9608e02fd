"""Acknowledged writes survive SIGKILL: real server process, real SQLite file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from api_client import ApiClient
from server_helpers import event, free_port, spawn_server, wait_healthy

pytestmark = pytest.mark.integration


async def test_links_survive_sigkill(tmp_path: Path):
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\n[rtc]\nice_addresses = ["127.0.0.1"]\n'
        f'[state]\nbackend = "sqlite"\ndata_dir = "{tmp_path / "data"}"\n'
    )
    # the tenant CLI works on the same store; the key is the last line it prints
    out = subprocess.run(
        [sys.executable, "-m", "mediaserver", "tenant", "create", "Acme", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("msk_")

    log = tmp_path / "server.log"
    proc = spawn_server(config, log)
    url = f"http://127.0.0.1:{port}"
    api = ApiClient(url, key)
    minted: dict[str, str] = {}
    try:
        await wait_healthy(url, proc)
        for i in range(20):
            status, link, _ = await api.post("/v1/links", {"event": event(f"e{i}")})
            assert status == 201
            minted[link["id"]] = link["join_url"]
        # SIGKILL right after the last acknowledged write: no chance to flush anything
        proc.send_signal(signal.SIGKILL)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)

        proc = spawn_server(config, log)
        await wait_healthy(url, proc)
        for link_id, join_url in minted.items():
            status, link, _ = await api.get(f"/v1/links/{link_id}")
            assert status == 200 and link["join_url"] == join_url
        # and the same event still maps to the same link (idempotency survived too)
        status, again, _ = await api.post("/v1/links", {"event": event("e0")})
        assert status == 200 and again["id"] in minted
        # revoking the key with the CLI stops new mints at once (while the server runs)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mediaserver",
                "tenant",
                "revoke-key",
                key,
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "revoked" in out.stdout
        status, problem, _ = await api.post("/v1/links", {"event": event("new")})
        assert status == 401 and "revoked" in problem["detail"]
        listing = subprocess.run(
            [sys.executable, "-m", "mediaserver", "tenant", "list", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "Acme" in listing and "revoked" in listing and key not in listing
        assert "\tadmin" in listing  # CLI-made keys are admin keys (docs/linkapi.md §2)
    finally:
        await api.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
