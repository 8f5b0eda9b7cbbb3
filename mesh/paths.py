"""Filesystem layout of the local mesh: the repo root, ignored caches and runtime dirs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Paths:
    """Every path the bring-up touches, derived from the repository root."""

    root: Path

    @property
    def venv_bin(self) -> Path:
        return self.root / ".venv" / "bin"

    @property
    def python(self) -> Path:
        return self.venv_bin / "python"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    @property
    def cache_bin(self) -> Path:
        return self.cache / "bin"

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def log_dir(self) -> Path:
        return self.var / "log"

    @property
    def run_dir(self) -> Path:
        return self.var / "run"

    @property
    def data_dir(self) -> Path:
        return self.var / "data"

    @property
    def services_dir(self) -> Path:
        return self.root / "services"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def ensure_dirs(self) -> None:
        for d in (self.cache_bin, self.log_dir, self.run_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)


REPO_ROOT = Path(__file__).resolve().parent.parent
PATHS = Paths(REPO_ROOT)
