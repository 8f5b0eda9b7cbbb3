"""What the edge costs: one unary RPC (authn WhoAmI) direct, through Envoy, and through Envoy + JWT + OPA.

Same run, same machine, side by side: fixed request rates (ghz --rps, open-loop style with enough workers that
the schedule is kept) and saturation (no rate limit). Prints a table and writes JSON to bench/results/.

    .venv/bin/python -m bench.edge_overhead [--duration 10] [--rates 200,1000]

Needs the mesh up (`make up`); starts a second, auth-less Envoy on the [bench] ports for the middle column.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from mesh.edge.config import EdgeOptions, render
from mesh.edge.envoy_bin import envoy_binary
from mesh.ports import load_ports
from tests.support.edge import edge_channel, token_for

REPO = Path(__file__).resolve().parents[1]
GHZ = REPO / ".cache" / "bin" / "ghz"
PROTOSET = REPO / "var" / "run" / "api.binpb"
RESULTS = REPO / "bench" / "results"
METHOD = "trade.authn.v1.AuthnService.WhoAmI"


@dataclass
class Result:
    path: str
    rate: str
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    # Responses that were not OK, by gRPC status, and ghz's most frequent error messages.
    not_ok: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def ghz_report(
    target: str,
    metadata: dict[str, str],
    rate: int | None,
    duration: int,
    concurrency: int,
    method: str = METHOD,
    data: str = "{}",
) -> dict:  # type: ignore[type-arg]
    """One ghz run (fixed rate, or saturation when rate is None); its JSON report."""
    args = [
        str(GHZ),
        "--insecure",
        "--protoset",
        str(PROTOSET),
        "--call",
        method,
        "-d",
        data,
        "-m",
        json.dumps(metadata),
        "-z",
        f"{duration}s",
        "-c",
        str(concurrency),
        "--connections",
        "4",
        "--format",
        "json",
        "--skipFirst",
        "50",
        # Calls still in flight when the duration ends complete and count with their own status and latency;
        # ghz's default ("close") cancels them and reports each as Unavailable.
        "--duration-stop",
        "wait",
        target,
    ]
    if rate:
        args[1:1] = ["--rps", str(rate)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120)
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def summarize(path: str, rate: str, report: dict) -> Result:  # type: ignore[type-arg]
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution", {})
    return Result(
        path=path,
        rate=rate,
        requests=int(report["count"]),
        ok=int(codes.get("OK", 0)),
        rps=round(report["rps"], 1),
        p50_ms=round(latency.get(50, float("nan")), 3),
        p99_ms=round(latency.get(99, float("nan")), 3),
        max_ms=round(report["slowest"] / 1e6, 3),
        not_ok={code: int(n) for code, n in codes.items() if code != "OK"},
        errors=dict(sorted((report.get("errorDistribution") or {}).items(), key=lambda e: -e[1])[:3]),
    )


def _start_plain_envoy(workdir: Path) -> subprocess.Popen[bytes]:
    bench_ports = load_ports().raw["bench"]
    config = render(
        EdgeOptions(
            auth=False,
            listen_port=bench_ports["envoy_plain"],
            admin_port=bench_ports["envoy_plain_admin"],
            access_log_path="/dev/null",
        )
    )
    path = workdir / "envoy-plain.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [envoy_binary(), "-c", str(path), "--base-id", "7", "--log-level", "warn", "--concurrency", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{bench_ports['envoy_plain_admin']}/ready", timeout=1) as r:
                if r.read().strip() == b"LIVE":
                    time.sleep(6)  # first active health check round marks the backends healthy
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bench envoy did not become ready")


def main(
    duration: int = typer.Option(10, help="seconds per measurement"),
    rates: str = typer.Option("200,1000", help="fixed request rates, comma separated"),
    concurrency: int = typer.Option(64, help="ghz workers"),
) -> None:
    ports = load_ports()
    with edge_channel() as channel:
        token = token_for(channel, "admin")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forwarded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    paths = {
        "direct": (f"127.0.0.1:{ports.service('authn')}", {"x-jwt-payload": forwarded}),
        "envoy": (f"127.0.0.1:{ports.raw['bench']['envoy_plain']}", {"x-jwt-payload": forwarded}),
        "envoy+jwt+opa": (f"127.0.0.1:{ports.edge['envoy']}", {"authorization": f"Bearer {token}"}),
    }
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        plain = _start_plain_envoy(Path(tmp))
        try:
            for rate in [*(int(r) for r in rates.split(",") if r), None]:
                for name, (target, metadata) in paths.items():
                    report = ghz_report(target, metadata, rate, duration, concurrency)
                    results.append(summarize(name, str(rate) if rate else "saturation", report))
        finally:
            plain.terminate()
            plain.wait(timeout=10)
    table = Table(title=f"unary {METHOD} — {duration}s per cell, ghz -c {concurrency}")
    for column in (
        "path",
        "rate (req/s)",
        "requests",
        "ok",
        "throughput (req/s)",
        "p50 ms",
        "p99 ms",
        "max ms",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.path,
            r.rate,
            str(r.requests),
            str(r.ok),
            f"{r.rps:.0f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.max_ms:.1f}",
        )
    console = Console()
    console.print(table)
    by = {(r.path, r.rate): r for r in results}
    summary = {}
    for label in {r.rate for r in results}:
        direct, full = by.get(("direct", label)), by.get(("envoy+jwt+opa", label))
        if direct and full:
            summary[label] = {
                "added_p50_ms": round(full.p50_ms - direct.p50_ms, 3),
                "added_p99_ms": round(full.p99_ms - direct.p99_ms, 3),
                "throughput_ratio": round(full.rps / direct.rps, 3) if direct.rps else None,
            }
    console.print_json(data=summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "edge_overhead.json"
    out.write_text(
        json.dumps(
            {
                "method": METHOD,
                "duration_s": duration,
                "concurrency": concurrency,
                "results": [asdict(r) for r in results],
                "edge_cost": summary,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
