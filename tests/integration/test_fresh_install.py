"""A fresh clone installs with the native forwarding path compiled and selected, and
without a compiler installs anyway and runs the pure-Python path.

`make run` / `make test` install the package with pip, which runs setup.py's optional
extension build: the clone of the committed tree (what a new machine gets), installed
the same way, must select the native path from the copy it compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ROOT, clean_env

pytestmark = pytest.mark.integration


def _install_clone(tmp_path: Path, env: dict[str, str] | None = None) -> Path:
    """Clone the committed tree and install it as `make` does (pip, build isolation,
    setuptools from the index) into a directory of its own."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, str(clone)], check=True, capture_output=True, env=env)
    return site


def _selected(tmp_path: Path, site: Path) -> str:
    code = "from mediaserver.sfu import fastpath; print(fastpath.PATH, fastpath.REASON)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env({"PYTHONPATH": str(site)}),
        cwd=tmp_path,  # not this checkout
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_fresh_clone_install_compiles_and_selects_the_native_path(tmp_path: Path) -> None:
    site = _install_clone(tmp_path)
    built = list((site / "mediaserver" / "sfu").glob("_fastpath*.so"))
    assert built, "extension not built"
    assert _selected(tmp_path, site).split()[0] == "native"
    code = "import mediaserver.sfu._fastpath as m; print(m.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env({"PYTHONPATH": str(site)}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).is_relative_to(site)  # the clone's build, not this checkout's


def test_without_a_compiler_the_install_succeeds_on_the_python_path(tmp_path: Path) -> None:
    site = _install_clone(tmp_path, {**os.environ, "CC": "false", "LDSHARED": "false"})
    assert not list((site / "mediaserver" / "sfu").glob("_fastpath*.so"))
    selected = _selected(tmp_path, site)
    assert selected.startswith("python native extension not available"), selected
