#!/usr/bin/env python3
"""Keep policies/permissions.json in step with the gRPC contracts in proto/.

The roles per RPC in permissions.json are hand-written and never changed here.
This script only derives the scoping flags from the request messages:

* ``account_scoped``    the request has a top-level ``account_id`` field;
* ``instrument_scoped`` the request has a top-level ``symbol`` or ``symbols`` field;

and reports every RPC of a ``trade.<svc>.v<n>`` service that has no entry, and
every entry that names no RPC. Public entries (``"public": true``) carry no flags.
Hand-written keys besides ``roles``: ``user_field`` (self-service methods: the
request field, JSON name, naming the target user; empty or the caller's own id
passes) and ``allow_restricted_symbols`` (the restricted-instrument list does not
apply: cancels, risk controls, reads of one's own orders/positions/PnL).

    python policies/gen_permissions.py            # check: exit 1 when out of step
    python policies/gen_permissions.py --write    # rewrite the scoping flags in place
    python policies/gen_permissions.py --descriptor-set api.binpb   # skip buf build
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PERMISSIONS = ROOT / "policies" / "permissions.json"
BUF = os.environ.get("BUF_BIN", str(ROOT / ".venv" / "bin" / "buf"))
TRADE_PACKAGE = re.compile(r"^trade\.[a-z0-9_]+\.v[0-9]+$")
ACCOUNT_FIELDS = frozenset({"account_id"})
INSTRUMENT_FIELDS = frozenset({"symbol", "symbols"})
SCOPING_KEYS = ("account_scoped", "instrument_scoped")


@dataclass(frozen=True)
class Method:
    """One RPC of the API as the edge sees it."""

    path: str
    request_fields: frozenset[str]
    request_json_fields: frozenset[str]
    client_streaming: bool

    @property
    def account_scoped(self) -> bool:
        return bool(self.request_fields & ACCOUNT_FIELDS)

    @property
    def instrument_scoped(self) -> bool:
        return bool(self.request_fields & INSTRUMENT_FIELDS)


def build_descriptor_set(out: Path) -> None:
    """Build the whole API (with imports) as a FileDescriptorSet."""
    subprocess.run(
        [BUF, "build", "--as-file-descriptor-set", "-o", str(out)],
        cwd=ROOT,
        check=True,
    )


def load_methods(descriptor_set: Path) -> dict[str, Method]:
    """Every RPC of every trade.<svc>.v<n> service, keyed by its HTTP/2 path."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(descriptor_set.read_bytes())
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}

    def collect(prefix: str, msgs: list[descriptor_pb2.DescriptorProto]) -> None:
        for msg in msgs:
            name = f"{prefix}.{msg.name}"
            messages[name] = msg
            collect(name, list(msg.nested_type))

    for f in fds.file:
        collect(f".{f.package}" if f.package else "", list(f.message_type))

    methods: dict[str, Method] = {}
    for f in fds.file:
        if not TRADE_PACKAGE.match(f.package):
            continue
        for svc in f.service:
            for m in svc.method:
                path = f"/{f.package}.{svc.name}/{m.name}"
                req = messages[m.input_type]
                methods[path] = Method(
                    path,
                    frozenset(fd.name for fd in req.field),
                    frozenset(fd.json_name or fd.name for fd in req.field),
                    m.client_streaming,
                )
    return methods


def reconcile(doc: dict[str, Any], methods: dict[str, Method]) -> tuple[dict[str, Any], list[str]]:
    """Return the document with derived scoping flags, and the problems found."""
    entries: dict[str, dict[str, Any]] = doc["permissions"]["methods"]
    problems: list[str] = []
    missing = sorted(set(methods) - set(entries))
    extra = sorted(set(entries) - set(methods))
    problems += [f"no entry for RPC {p} (add it with its roles)" for p in missing]
    problems += [f"entry for unknown RPC {p}" for p in extra]

    new_entries: dict[str, dict[str, Any]] = {}
    for path in sorted(entries):
        entry = dict(entries[path])
        method = methods.get(path)
        if method is not None and not entry.get("public", False):
            if not entry.get("roles"):
                problems.append(f"{path} lists no roles")
            entry["account_scoped"] = method.account_scoped
            entry["instrument_scoped"] = method.instrument_scoped
            if entry.get("allow_restricted_symbols") and not method.instrument_scoped:
                problems.append(f"{path}: allow_restricted_symbols on a method without symbol/symbols")
            user_field = entry.get("user_field")
            if user_field is not None and user_field not in method.request_json_fields:
                problems.append(f"{path}: user_field {user_field!r} is not a field of its request (JSON name)")
            if method.client_streaming:
                print(
                    f"warning: {path} is client-streaming; the edge cannot decode its body",
                    file=sys.stderr,
                )
        new_entries[path] = entry
    new_doc = json.loads(json.dumps(doc))
    new_doc["permissions"]["methods"] = new_entries
    return new_doc, problems


def render(doc: dict[str, Any]) -> str:
    """Stable layout: one RPC per line so reviews show role changes plainly."""
    perms = doc["permissions"]
    lines = ["{", '  "permissions": {']
    for key in perms:
        if key == "methods":
            continue
        lines.append(f"    {json.dumps(key)}: {json.dumps(perms[key])},")
    lines.append('    "methods": {')
    items = list(perms["methods"].items())
    for i, (path, entry) in enumerate(items):
        keys = ("public", "roles", *SCOPING_KEYS, "allow_restricted_symbols", "user_field")
        ordered = {k: entry[k] for k in keys if k in entry}
        ordered.update({k: v for k, v in entry.items() if k not in ordered})
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"      {json.dumps(path)}: {json.dumps(ordered)}{comma}")
    lines += ["    }", "  }", "}", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the scoping flags in permissions.json")
    parser.add_argument("--descriptor-set", type=Path, help="use this FileDescriptorSet instead of buf build")
    parser.add_argument("--permissions", type=Path, default=PERMISSIONS)
    args = parser.parse_args()

    if args.descriptor_set:
        methods = load_methods(args.descriptor_set)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "api.binpb"
            build_descriptor_set(out)
            methods = load_methods(out)

    current_text = args.permissions.read_text()
    new_doc, problems = reconcile(json.loads(current_text), methods)
    new_text = render(new_doc)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if args.write:
        if new_text != current_text:
            args.permissions.write_text(new_text)
            print(f"updated {args.permissions}")
    elif new_text != current_text:
        print(f"error: {args.permissions} is out of step; run with --write", file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
