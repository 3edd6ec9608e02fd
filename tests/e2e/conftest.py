"""Browser tests: real headless Chromium (Debian's) driven by Playwright, with the server,
the browser and any SDK bots inside a network namespace that has only `lo`.

The namespace is created here and removed at the end. The test process's main thread
enters it with setns(2), so everything it starts afterwards (the in-process server, the
SDK bots, the Playwright driver and Chromium) lives there; otherwise Chromium would also
gather the machine's external address.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from browser import ARTIFACTS, CHROMIUM

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


def _requirements() -> str | None:
    if os.geteuid() != 0:
        return "browser tests need root (network namespaces); CI runs as root"
    if not shutil.which("ip"):
        return "iproute2 missing: run `make test` (it installs it)"
    if not os.path.exists(CHROMIUM):
        return "chromium missing: run `make test` (it installs Debian's chromium)"
    return None


@pytest.fixture(scope="session")
def netns() -> Iterator[str]:
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    name = f"mse2e{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        ARTIFACTS.mkdir(exist_ok=True)
        yield name
    finally:
        _setns(original)
        os.close(original)
        subprocess.run(["ip", "netns", "delete", name], check=False)
