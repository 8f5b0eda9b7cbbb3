"""`python -m mesh.edge render --out FILE [--compose]`: write the Envoy config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer
import yaml

from mesh.edge.config import EdgeOptions, compose_options, render

app = typer.Typer(add_completion=False)


@app.command("render")
def render_cmd(
    out: Path = typer.Option(..., help="where to write envoy.yaml"),
    compose: bool = typer.Option(False, help="use compose service host names"),
) -> None:
    opts = compose_options() if compose else EdgeOptions()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(render(opts), sort_keys=False))
    typer.echo(f"wrote {out}")


@app.command("validate")
def validate_cmd(config: Path = typer.Argument(..., help="envoy.yaml to validate")) -> None:
    """Ask Envoy itself whether the config is valid."""
    from mesh.edge.envoy_bin import envoy_binary

    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True)
    typer.echo(result.stdout[-2000:] + result.stderr[-2000:])
    raise typer.Exit(result.returncode)


if __name__ == "__main__":
    app()
