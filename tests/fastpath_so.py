"""pytest plugin (``-p fastpath_so``): load the native forwarding extension from the
file named by FASTPATH_SO, e.g. an AddressSanitizer build (``make asan``), in place of
the one the install compiled. Loaded before any test module imports mediaserver."""

from __future__ import annotations

import importlib.util
import os
import sys

_path = os.environ.get("FASTPATH_SO")
if _path:
    _spec = importlib.util.spec_from_file_location("mediaserver.sfu._fastpath", _path)
    assert _spec is not None and _spec.loader is not None, _path
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    sys.modules["mediaserver.sfu._fastpath"] = _module
