"""The OPA binary is rebuilt when its version or the patches applied to its source change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mesh import install
from mesh.paths import Paths


def _fake_binary(paths: Paths) -> None:
    paths.cache_bin.mkdir(parents=True)
    binary = paths.cache_bin / "opa-envoy-plugin"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)


def test_a_binary_without_a_build_stamp_is_rebuilt(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    _fake_binary(paths)
    assert install.locate(paths).opa is None
    assert "opa" in install.locate(paths).missing()


def test_a_binary_stamped_with_the_current_build_is_used(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    _fake_binary(paths)
    (paths.cache_bin / "opa-envoy-plugin.build").write_text(install._opa_build_id() + "\n")
    assert install.locate(paths).opa == paths.cache_bin / "opa-envoy-plugin"


def test_changing_a_patch_changes_the_build_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-a.patch").write_text("--- a/x\n+++ b/x\n")
    monkeypatch.setattr(install, "OPA_ENVOY_PATCHES", patches)
    before = install._opa_build_id()
    (patches / "0001-a.patch").write_text("--- a/x\n+++ b/x\n@@ -1 +1 @@\n")
    assert install._opa_build_id() != before
    assert install._opa_build_id().startswith(install.OPA_ENVOY_VERSION + " ")


def test_the_shipped_patches_are_found() -> None:
    names = [p.name for p in sorted(install.OPA_ENVOY_PATCHES.glob("*.patch"))]
    assert "0001-grpc-stream-workers.patch" in names
    assert os.access(install.OPA_ENVOY_PATCHES, os.R_OK)
