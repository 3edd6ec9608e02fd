"""Smoke test of the benchmark harness (`make bench-quick`): it runs both systems and
produces sane numbers. No thresholds on speed: speed is for `make bench` to measure."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark creates a network namespace: root")
@pytest.mark.skipif(not shutil.which("janus"), reason="janus missing: run `make test`")
@pytest.mark.timeout(300)  # ~80 s on 2 busy cores: both servers, 12 short scenarios
def test_bench_quick_runs_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--quick", "--output", str(out), "--no-docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["aiortc"] == "1.16.0"
    rows = {(r["scenario"], r["system"]): r for r in doc["results"]}
    media = [s for s, _ in rows if s.startswith(("fanout", "fullroom"))]
    for scenario in media:
        for system in ("mediaserver", "janus"):
            row = rows[(scenario, system)]
            assert row["forwarded_pps"] > 0
            assert (
                math.isfinite(row["us_per_forwarded_packet"]) and row["us_per_forwarded_packet"] > 0
            )
            assert 0 <= row["loss_pct"] <= 100
            assert 0 <= row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert rows[("linkapi-40", "mediaserver")]["requests_per_second"] > 0
    recording = rows[("recording-3", "mediaserver")]  # every publisher recorded meanwhile
    assert recording["forwarded_pps"] > 0 and 0 <= recording["loss_pct"] <= 100, recording
    assert rows[("churn-3", "janus")]["join_ms_p50"] > 0
    abuse = rows[("abuse-3", "mediaserver")]
    assert abuse["streams_during"] == 4, abuse  # both real peers kept receiving both kinds
    assert abuse["baseline_longest_gap_ms"] > 0 and abuse["longest_gap_ms"] > 0
    assert abuse["rss_before_mb"] > 0 and abuse["attack_messages_sent"] > 0
    assert ("abuse-3", "janus") not in rows
    grid = rows[("grid-4", "mediaserver")]  # simulcast: smaller downlink than single-stream
    assert 0 < grid["simulcast_downlink_kbps_p50"] < grid["single_downlink_kbps_p50"], grid
    assert ("grid-4", "janus") not in rows
