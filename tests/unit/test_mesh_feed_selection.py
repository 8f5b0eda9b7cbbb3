"""The market-data feed is chosen when the mesh is brought up: prism by default, Binance on request."""

from __future__ import annotations

import pytest

from mesh import processes
from mesh.paths import PATHS
from mesh.ports import load_ports
from mesh.readiness import NatsClientProbe


def _programs() -> dict[str, processes.Process]:
    ports = load_ports()
    return {p.name: p for p in [*processes.services(PATHS, ports), *processes.feed_handlers(PATHS, ports)]}


def test_prism_feeds_the_mesh_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADE_MD_FEED", raising=False)
    programs = _programs()
    assert "feed_binance" not in programs
    assert "TRADE_FEED_ENABLED" not in programs["prism"].env


def test_binance_selected_starts_its_feed_handler_and_silences_prisms_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_MD_FEED", "binance")
    programs = _programs()
    feed = programs["feed_binance"]
    assert feed.argv[-2:] == ("-m", "services.feeds.binance")
    assert feed.env["TRADE_BINANCE_ENABLED"] == "1"
    assert isinstance(feed.probe, NatsClientProbe) and feed.probe.client_name == "feed-binance"
    assert programs["prism"].env["TRADE_FEED_ENABLED"] == "0"  # prism stays up as the venue for orders


def test_an_unknown_feed_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADE_MD_FEED", "kraken")
    with pytest.raises(ValueError, match="prism, binance"):
        processes.md_feed()
