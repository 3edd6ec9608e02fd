"""`make bench`: mediaserver and Janus side by side, in one run, on this machine.

Both servers, and the bots, run inside a network namespace with a veth pair that this
script creates and removes (Janus ignores loopback interfaces). The server under test
is pinned to CPU 0, the bots to CPU 1. Both servers start once; each scenario size runs
on ours and then at once on Janus, the other server stopped (SIGSTOP) meanwhile, so
one server runs at a time and the two sides of a comparison are seconds apart, not
minutes (a slow patch of a shared machine would otherwise land on one side only).
Every scenario runs three times and the medians are reported. Results:
loadtests/results/latest.json and docs/benchmarks.md (table, method, plot).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results"
SERVER_CPU = 0
BOTS_CPU = 1
PORT = 8080
JANUS_WS_PORT = 8188

FULL = {
    # fan-out 1 and 5 left in session 5, full room 5 in session 6 (not among issue 13's
    # goals; a run had grown past 10 minutes with Janus's full rooms renegotiating per
    # arrival)
    "fanout": [10, 20, 40, 80],
    "fullroom": [10, 15, 25],
    "churn": [10],
    "linkapi": [400],
    "abuse": [10],
    "recording": [10],
    "grid": [12],
}
QUICK = {
    "fanout": [5],
    "fullroom": [3],
    "churn": [3],
    "linkapi": [40],
    "abuse": [3],
    "recording": [3],
    "grid": [4],
}
#: Scenarios only our server has (Janus has no link API, no meeting links to attack;
#: recording: fullroom with every room recorded, to compare with fullroom).
#: grid: loadtests/grid.py has a Janus variant (rid simulcast publishers, substream 0
#: for the small tiles), but at 12 participants Janus 1.1.2 applied the substream to
#: only one or two of each subscriber's ten small streams (it works at 3), so its row
#: would not measure what the scenario means: ours only until that is understood.
OURS_ONLY = ("linkapi", "abuse", "recording", "grid")

METRICS = (
    "us_per_forwarded_packet",
    "forwarded_pps",
    "latency_ms_p50",
    "latency_ms_p99",
    "loss_pct",
)
#: Printed too when a scenario reports them.
EXTRAS = (
    "join_ms_p50",
    "join_ms_p99",
    "server_join_ms_p50",
    "server_join_ms_p99",
    "server_cpu_pct",
    "bots_cpu_pct",
    "server_wait_pct",
    "bots_wait_pct",
    "arrivals_bots_cpu_pct",
    "drops_at_bots",
    "drops_at_server",
    "read_latency_ms_p99",
    "join_steps_ms",
)


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    janus = subprocess.run(["janus", "--version"], capture_output=True, text=True)
    from importlib.metadata import version

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiortc": version("aiortc"),
        "janus": (janus.stdout or janus.stderr).strip().splitlines()[0]
        if janus.stdout or janus.stderr
        else "",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def wait_port(ns: Any, ip: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    probe = [sys.executable, "-c", f"import socket; socket.create_connection(('{ip}', {port}), 1)"]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        if subprocess.run(ns.cmd(probe, None), capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{ip}:{port} did not open")


def free_udp_port(ns: Any) -> int:
    """A UDP port nothing is bound to on the server's address inside the namespace."""
    probe = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.bind(('{ns.server_ip}', 0)); print(s.getsockname()[1])"
    )
    return int(ns.run([sys.executable, "-c", probe]).strip())


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class OurServer:
    name = "mediaserver"

    def __init__(self, ns: Any, workdir: Path) -> None:
        self.ns = ns
        self.workdir = workdir
        self.config = workdir / "mediaserver.toml"
        self.token_secret = secrets.token_urlsafe(32)
        #: rtc.udp_port, as we recommend deploying (docs/operations.md): one UDP socket
        #: for every peer connection; a port free inside the namespace
        self.udp_port = free_udp_port(ns)
        self.write_config(abuse=False)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mediaserver",
                "tenant",
                "create",
                "bench",
                "--config",
                str(self.config),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        self.api_key = out.stdout.strip().splitlines()[-1]
        self.url = f"ws://{ns.server_ip}:{PORT}/ws"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, *, abuse: bool, recording: bool = False) -> None:
        """The server's config; ``abuse``: the join rate per address at its default
        (the capacity scenarios join all their bots from one address at once);
        ``recording``: every room is recorded from its first join."""
        ns, workdir = self.ns, self.workdir
        self.config.write_text(
            f"""
[server]
host = "{ns.server_ip}"
port = {PORT}
[rtc]
ice_addresses = ["{ns.server_ip}"]
udp_port = {self.udp_port}
[rooms]
max_participants = 200
max_publications_per_participant = 4
adhoc = true
[state]
backend = "sqlite"
data_dir = "{workdir / "data"}"
[signalling]
# every bot (and, in `abuse`, every attacker) has the same source address here; the
# per-address caps are covered by tests/attacks, the bench exercises the other limits
max_connections_per_address = 0
{"" if abuse else "join_burst_per_address = 0  # capacity scenarios: all bots join at once"}
[logging]
level = "warning"
[linkapi]
rate_limit_per_minute = 1000000
# the bots read this file and mint their room tokens with this key (loadtests/bots.py)
token_secret = "{self.token_secret}"
[recording]
default_policy = "{"always" if recording else "off"}"
"""
        )

    def start(self) -> int:
        log = (self.workdir / "mediaserver.log").open("ab")
        self.proc = subprocess.Popen(
            self.ns.cmd(
                [sys.executable, "-m", "mediaserver", "serve", "--config", str(self.config)],
                SERVER_CPU,
            ),
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        wait_port(self.ns, self.ns.server_ip, PORT, self.proc, 30)
        return self.proc.pid

    def stop(self) -> None:
        _terminate(self.proc)
        keep = os.environ.get("MSBENCH_KEEP_LOG")  # a directory: keep the server's log
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.workdir / "mediaserver.log", Path(keep) / "mediaserver.log")


class JanusServer:
    name = "janus"

    def __init__(self, ns: Any, workdir: Path, event_loops: int = 1) -> None:
        from .janus import write_janus_config

        self.ns = ns
        self.dir = workdir / "janus"
        self.dir.mkdir(exist_ok=True)
        write_janus_config(
            self.dir,
            server_ip=ns.server_ip,
            server_if=ns.server_if,
            ws_port=JANUS_WS_PORT,
            event_loops=event_loops,
        )
        from .janus import janus_url

        self.url = janus_url(self.dir)
        self.api_key = ""
        self.config: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        from .janus import start_janus

        self.proc = start_janus(self.ns, self.dir, SERVER_CPU)
        return self.proc.pid

    def stop(self) -> None:
        _terminate(self.proc)


def run_bots(
    ns: Any, server: Any, pid: int, scenario: str, size: int, window: float, windows: int = 1
) -> list[dict[str, Any]]:
    """Run one scenario; returns one result per measurement window (repeats)."""
    argv = [
        sys.executable,
        "-m",
        "loadtests.bots",
        "--system",
        server.name,
        "--url",
        server.url,
        "--server-pid",
        str(pid),
        "--scenario",
        scenario,
        "--size",
        str(size),
        "--window",
        str(window),
        "--ice-address",
        ns.bot_ip,
        "--api-key",
        server.api_key,
        "--windows",
        str(windows),
    ]
    if server.config is not None:  # the bots mint room tokens with the server's key
        argv += ["--server-config", str(server.config)]
    started = time.monotonic()
    proc = subprocess.run(
        ns.cmd(argv, BOTS_CPU), capture_output=True, text=True, cwd=ROOT, timeout=400
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"bots failed ({scenario} {size} on {server.name}):\n{tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    windows_out = result.pop("windows", None)
    shared = {**result, "bot_seconds": round(time.monotonic() - started, 1)}
    if windows_out is None:
        return [shared]
    return [{**shared, **w} for w in windows_out]


def _pause(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)


def _resume(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def _measure(
    ns: Any, server: Any, pid: int, scenario: str, size: int, window: float, repeats: int
) -> dict[str, Any]:
    """One scenario size on one server: the row of the results (medians of the runs)."""
    runs: list[dict[str, Any]] = []
    media = scenario in ("fanout", "fullroom", "recording")
    bots = "fullroom" if scenario == "recording" else scenario
    try:
        if media:  # one setup, `repeats` consecutive windows
            runs = run_bots(ns, server, pid, bots, size, window, repeats)
        else:
            for _ in range(repeats):
                runs += run_bots(ns, server, pid, scenario, size, window)
    except Exception as exc:  # record it, keep going
        print(f"{scenario}-{size} on {server.name} failed: {exc}", flush=True)
    row = {
        "scenario": f"{scenario}-{size}",
        "system": server.name,
        **median_of(runs),
        "repeats": len(runs),
    }
    for key in ("subscriber_states", "join_steps_ms", "server_join_buckets"):  # as they came
        if runs and key in runs[-1]:
            row[key] = runs[-1][key]
    if scenario == "abuse" and runs:
        row["attack_replies"] = runs[-1].get("attack_replies")
    if not runs:
        row["error"] = "failed (see the bench output)"
    if runs and not all(r.get("setup_complete", True) for r in runs):
        row["note"] = "not every stream was flowing: overloaded"
    for m in METRICS:
        row.setdefault(m, None)
    return row


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float))}
    out: dict[str, Any] = {}
    for k in sorted(keys):
        values = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
        out[k] = round(statistics.median(values), 3) if values else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke variant (< 2 min)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--window", type=float, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios to run (e.g. abuse); default all"
    )
    parser.add_argument(
        "--sizes", default="", help="comma-separated sizes instead of each scenario's own"
    )
    parser.add_argument(
        "--ours-only", action="store_true", help="run mediaserver only (no Janus side)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make bench needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    if not shutil.which("janus"):
        print("janus missing: apt-get install janus (make bench installs it)", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(plan)
        if unknown:
            print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        plan = {k: v for k, v in plan.items() if k in wanted}
    if args.sizes:
        plan = {k: [int(s) for s in args.sizes.split(",")] for k in plan}
    repeats = args.repeats or (1 if args.quick else 3)
    window = args.window or (2.0 if args.quick else 4.0)
    from .netns import BenchNetns

    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="msbench-") as tmp:
        ns = stack.enter_context(BenchNetns())
        workdir = Path(tmp)
        servers: list[Any] = [OurServer(ns, workdir)]
        if not args.ours_only:
            servers.append(JanusServer(ns, workdir))
        pids: dict[str, int] = {}
        try:
            for server in servers:
                pids[server.name] = server.start()
                _pause(pids[server.name])  # each resumes for its turns only
            for scenario, sizes in plan.items():
                for size in sizes:
                    for server in servers:
                        if scenario in OURS_ONLY and server.name == "janus":
                            continue
                        if (
                            scenario in ("abuse", "recording")
                            and isinstance(server, OurServer)
                            and size == sizes[0]
                        ):
                            _resume(pids[server.name])  # SIGTERM waits on a stopped process
                            server.stop()  # restart with the default join rate per address
                            server.write_config(
                                abuse=scenario == "abuse", recording=scenario == "recording"
                            )
                            pids[server.name] = server.start()
                        else:
                            _resume(pids[server.name])
                        try:
                            row = _measure(
                                ns, server, pids[server.name], scenario, size, window, repeats
                            )
                        finally:
                            _pause(pids[server.name])
                        results.append(row)
                        print(
                            f"{row['scenario']:>14} {server.name:<12} "
                            + " ".join(f"{m}={row.get(m)}" for m in METRICS + EXTRAS if m in row),
                            flush=True,
                        )
        finally:
            for server in servers:
                if server.name in pids:
                    _resume(pids[server.name])
                server.stop()
    doc = {
        "machine": machine(),
        "settings": {
            "repeats": repeats,
            "window_seconds": window,
            "quick": args.quick,
            "janus_event_loops": 1,
            "mediaserver_udp_port": True,
            "server_cpu": SERVER_CPU,
            "bots_cpu": BOTS_CPU,
        },
        "results": results,
        "duration_seconds": round(time.monotonic() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str))
    print(f"wrote {args.output} in {doc['duration_seconds']} s")
    if not args.no_docs:
        from .report import write_report

        write_report(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
