"""The join page's files: every ES module app.js imports (directly or not) is served under
/static/ as JavaScript, every .js file under mediaserver/web/ is reached from an entry
(app.js, or account.js for the account page), the package data ships them all, and
(when node is installed) each one parses as a module. No build step: a module that is
missing, orphaned or left out of the wheel would only show in a browser."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import aiohttp
import pytest
from server_helpers import ROOT, make_config, serving

pytestmark = pytest.mark.integration

WEB = ROOT / "mediaserver" / "web"
ENTRIES = ["app.js", "account.js"]
IMPORT = re.compile(r"""^import\s[^"']*?["'](\.{1,2}/[^"']+)["'];""", re.M)


def _imports(path: Path) -> list[Path]:
    return [(path.parent / rel).resolve() for rel in IMPORT.findall(path.read_text())]


def _module_graph() -> set[Path]:
    seen: set[Path] = set()
    todo = [WEB / "app.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path))
    return seen


def _js_files() -> set[Path]:
    return {p.resolve() for p in WEB.rglob("*.js")}


def test_every_module_is_reached_and_exists() -> None:
    graph = _module_graph()
    missing = [str(p.relative_to(WEB.resolve())) for p in graph if not p.is_file()]
    assert not missing, f"imported but not in mediaserver/web/: {missing}"
    orphans = _js_files() - graph - {(WEB / e).resolve() for e in ENTRIES}
    assert not orphans, f"not imported by any entry: {sorted(map(str, orphans))}"
    assert len(graph) > 2  # app.js and its modules


def test_package_data_ships_every_web_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mediaserver"]
    package = ROOT / "mediaserver"
    for path in WEB.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(package).as_posix()
        # setuptools globs: "*" does not cross "/"
        shipped = any(
            fnmatch.fnmatch(rel, pat) and rel.count("/") == pat.count("/") for pat in patterns
        )
        assert shipped, f"{rel} is not in [tool.setuptools.package-data] mediaserver"


async def test_modules_are_served_as_javascript() -> None:
    web_root = WEB.resolve()
    async with serving(make_config()) as srv, aiohttp.ClientSession() as http:
        for path in sorted(_module_graph()):
            url = f"{srv.http_url}/static/{path.relative_to(web_root).as_posix()}"
            async with http.get(url) as r:
                assert r.status == 200, url
                assert r.content_type in ("text/javascript", "application/javascript"), url
                # revalidated on each load: no mix of old and new modules after an upgrade
                assert r.headers["Cache-Control"] == "no-cache", url
                assert r.headers["X-Content-Type-Options"] == "nosniff", url
                assert await r.read() == path.read_bytes()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_modules_parse() -> None:
    for path in sorted(_js_files()):
        proc = subprocess.run(
            ["node", "--input-type=module", "--check"],
            input=path.read_text(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, f"{path.relative_to(WEB)}: {proc.stderr[-2000:]}"
