"""The README's grpcurl walkthrough, run as written against the whole local mesh."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("mesh")


def _walkthrough(heading: str = "## Walkthrough with grpcurl") -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"README code block under {heading!r} not found"
    return match.group(1)


def test_readme_walkthrough_logs_in_and_calls_through_the_edge() -> None:
    script = "set -u\n" + _walkthrough().replace("$G ", "echo '>>>' >&2; $G ")
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    out, err = result.stdout, result.stderr
    assert "trade.authn.v1.AuthnService" in out and "trade.oms.v1.OmsService" in out
    identity = json.loads(out[out.index("{") : out.index("}", out.index('"username"')) + 1])
    assert identity["username"] == "trader" and identity["accounts"] == ["ACC-TRADER-1"]
    assert "Code: Unauthenticated" in err
    assert "Code: PermissionDenied" in err


def test_readme_trading_walkthrough_submits_amends_cancels_and_streams_fills_back() -> None:
    script = "set -eu\n" + _walkthrough("## Trading walkthrough")
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"status": "ORDER_STATUS_PENDING_NEW"' in out  # the submit's acknowledgement
    assert '"fill": {' in out and '"fillId"' in out  # StreamFills delivered the market order's fill
    assert "ORDER_STATUS_FILLED" in out and "ORDER_STATUS_CANCELED" in out  # StreamOrderUpdates
    assert '"replaced"' in out  # the amend took effect
    assert '"position": {' in out and '"total": {' in out  # GetPosition and GetPnl answered
