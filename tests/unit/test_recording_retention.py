"""Retention: finished recordings older than the configured days are deleted, from the
disk and from the store; running and recent ones stay."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mediaserver.recording.retention import expired, sweep
from mediaserver.state.sqlite import SqliteStore


def make(root: Path, rec_id: str, state: str, age_days: float) -> dict:
    folder = root / rec_id
    folder.mkdir(parents=True)
    manifest = {
        "id": rec_id,
        "link_id": "lnk_1",
        "state": state,
        "started_at": time.time() - age_days * 86400,
        "tracks": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "a.webm").write_bytes(b"\x1a\x45\xdf\xa3")
    return manifest


async def test_sweep_deletes_old_finished_recordings_on_disk_and_in_the_store(tmp_path):
    root = tmp_path / "rec"
    store = SqliteStore(":memory:")
    await store.open()
    try:
        for rec_id, state, age in [
            ("RE_old_ready", "ready", 10),
            ("RE_old_cut", "interrupted", 8),
            ("RE_old_running", "recording", 10),
            ("RE_new", "ready", 1),
        ]:
            await store.put_recording(make(root, rec_id, state, age))
        assert expired(root, 0, time.time()) == []  # 0: keep everything
        deleted = await sweep(root, 7, store.delete_recording)
        assert sorted(deleted) == ["RE_old_cut", "RE_old_ready"]
        assert sorted(p.name for p in root.iterdir()) == ["RE_new", "RE_old_running"]
        assert [r["id"] for r in await store.list_recordings("lnk_1")] == [
            "RE_new",
            "RE_old_running",
        ]
    finally:
        await store.close()


async def test_startup_marks_cut_recordings_interrupted_on_disk_and_in_the_store(tmp_path):
    import dataclasses

    from mediaserver.app import recordings_at_startup
    from mediaserver.config import RecordingConfig, load_config

    root = tmp_path / "rec"
    running = make(root, "RE_cut", "recording", 0)
    make(root, "RE_done", "ready", 0)
    config = load_config(None, env={})
    config = dataclasses.replace(config, recording=RecordingConfig(directory=str(root)))
    store = SqliteStore(":memory:")
    await store.open()
    try:
        await store.put_recording(running)
        await recordings_at_startup(config, store)
        on_disk = json.loads((root / "RE_cut" / "manifest.json").read_text())
        assert on_disk["state"] == "interrupted"
        assert (await store.get_recording("RE_cut"))["state"] == "interrupted"
        done = json.loads((root / "RE_done" / "manifest.json").read_text())
        assert done["state"] == "ready"  # finished ones are left alone
    finally:
        await store.close()
