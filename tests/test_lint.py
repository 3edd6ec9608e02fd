"""`make lint` as part of the suite: ruff (lint + format) and mypy --strict on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PATHS = ["mediaserver", "linkapi", "loadtests", "tests"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    proc = run(str(BIN / "ruff"), "check", *PATHS)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_ruff_format() -> None:
    proc = run(str(BIN / "ruff"), "format", "--check", *PATHS)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_strict() -> None:
    proc = run(str(BIN / "mypy"))
    assert proc.returncode == 0, proc.stdout[-4000:]
