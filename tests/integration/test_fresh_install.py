"""A fresh clone installs with the native forwarding path compiled and selected.

`make run` / `make test` install the package with pip, which runs setup.py's optional
extension build: the clone of the committed tree (what a new machine gets), installed
the same way, must select the native path from the copy it compiled.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ROOT, clean_env

pytestmark = pytest.mark.integration


def test_fresh_clone_install_compiles_and_selects_the_native_path(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    site = tmp_path / "site"
    # installed as `make` installs: pip, with build isolation (setuptools from the index)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(clone),
        ],
        check=True,
        capture_output=True,
    )
    assert list((site / "mediaserver" / "sfu").glob("_fastpath*.so")), "extension not built"
    code = (
        "from mediaserver.sfu import fastpath; import mediaserver.sfu._fastpath as m; "
        "print(fastpath.PATH); print(m.__file__)"
    )
    env = clean_env({"PYTHONPATH": str(site)})
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "native"
    assert Path(out[1]).is_relative_to(site)  # the clone's build, not this checkout's
