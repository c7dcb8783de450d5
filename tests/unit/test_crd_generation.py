"""crds/ is generated from the models, is structural, and `kubenova crds --check` guards it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubenova.models.crd import build_crd
from kubenova.models.v1alpha1 import KINDS, Instance

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


def run_crds(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kubenova.cli", "crds", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_committed_crds_match_the_models():
    result = run_crds("--check", "--dir", str(CRD_DIR))
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_or_missing_file(tmp_path):
    shutil.copytree(CRD_DIR, tmp_path / "crds")
    target = tmp_path / "crds" / "compute.kubenova.io_flavors.yaml"
    target.write_text(target.read_text().replace("minimum: 1", "minimum: 2"))
    (tmp_path / "crds" / "compute.kubenova.io_volumes.yaml").unlink()
    result = run_crds("--check", "--dir", str(tmp_path / "crds"))
    assert result.returncode == 1
    assert "flavors" in result.stderr and "volumes" in result.stderr


def walk(schema: dict, path: str = ""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind())
def test_schema_is_structural(kind):
    root = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(root):
        assert "type" in node, f"{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "propertyNames"):
            assert banned not in node, f"{path} uses {banned}"
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind())
def test_every_kind_is_in_the_nova_category_with_a_status_subresource(kind):
    crd = build_crd(kind)
    assert crd["spec"]["names"]["categories"] == ["nova"]
    assert crd["spec"]["names"]["shortNames"]
    if "status" in kind.model_fields:
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_instance_printer_columns():
    columns = build_crd(Instance)["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [c["name"].upper() for c in columns if not c.get("priority")]
    assert default == ["STATUS", "READY", "HOST", "IP", "AGE"]
    by_name = {c["name"].upper(): c for c in columns}
    assert by_name["STATUS"]["jsonPath"] == ".status.printableStatus"  # Nova's API status
    assert by_name["READY"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    wide = [c["name"].upper() for c in columns if c.get("priority") == 1]
    # HOST STATUS: DOWN while the host has stopped its heartbeat (Nova's host_status);
    # BOOTED BY: the sign that the guest OS is up (DHCP, CloudInit, GuestAgent, ...)
    assert wide[:5] == ["VM STATE", "TASK", "POWER", "HOST STATUS", "BOOTED BY"]
    assert by_name["BOOTED BY"]["jsonPath"] == ".status.guestBootSignal"
