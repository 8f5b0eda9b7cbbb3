"""Creates the demo users of mesh/demo_users.toml (idempotent): `python -m services.authn.seed`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from services.authn.bootstrap import build_domain
from services.authn.domain.model import Role
from services.authn.settings import AuthnSettings

DEMO_USERS = Path(__file__).resolve().parents[2] / "mesh" / "demo_users.toml"


def seed(settings: AuthnSettings, path: Path = DEMO_USERS) -> list[str]:
    authn = build_domain(settings)
    created = []
    for entry in tomllib.loads(path.read_text())["users"]:
        if authn.store.get_user_by_name(entry["username"]) is None:
            authn.create_user(
                entry["username"], entry["password"], [Role(r) for r in entry["roles"]], entry["accounts"]
            )
            created.append(entry["username"])
    return created


if __name__ == "__main__":
    names = seed(AuthnSettings())
    print(f"demo users created: {', '.join(names) or 'none (already present)'}")
