"""The pydantic models accept the examples and reject what the CRDs reject."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from kubenova.models.v1alpha1 import KINDS, Flavor, Instance, Quota

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BY_KIND = {k.kind(): k for k in KINDS}


def example_docs() -> list[dict]:
    return [d for p in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]


def test_every_user_facing_kind_has_an_example():
    # ResourceProvider is the scheduler's own bookkeeping (placement); users never write it.
    assert {d["kind"] for d in example_docs()} >= set(BY_KIND) - {"ResourceProvider"}


def differences(written, read, path="") -> list[str]:
    """Where `read` does not hold what was `written`: every key written must come back with
    an equal value (recursively); keys only in `read` are defaults the model filled in."""
    if isinstance(written, dict) and isinstance(read, dict):
        out = []
        for key, value in written.items():
            if key not in read:
                out.append(f"{path}.{key}: dropped")
            else:
                out += differences(value, read[key], f"{path}.{key}")
        return out
    if isinstance(written, list) and isinstance(read, list):
        if len(written) != len(read):
            return [f"{path}: {len(written)} items written, {len(read)} read"]
        return [
            d
            for i, (w, r) in enumerate(zip(written, read, strict=True))
            for d in differences(w, r, f"{path}[{i}]")
        ]
    return (
        []
        if written == read and type(written) is type(read)
        else [f"{path}: {written!r} -> {read!r}"]
    )


@pytest.mark.parametrize("doc", example_docs(), ids=lambda d: d["kind"])
def test_example_parses_and_round_trips(doc):
    model = BY_KIND[doc["kind"]]
    obj = model.model_validate(doc)
    api = obj.to_api()
    assert differences(doc, api) == []
    assert (api["apiVersion"], api["kind"]) == (doc["apiVersion"], doc["kind"])
    # and again: what the model writes, it reads back as the same object
    assert model.model_validate(api) == obj and model.model_validate(api).to_api() == api


def test_the_comparison_sees_changed_values():
    assert differences({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}, "c": 0}) == [".a.b[1]: 2 -> 3"]
    assert differences({"a": 1}, {"a": True}) == [".a: 1 -> True"]
    assert differences({"a": "1"}, {}) == [".a: dropped"]


def test_defaults_are_novas():
    quota = Quota.model_validate({"metadata": {"name": "default"}, "spec": {}})
    assert (quota.spec.instances, quota.spec.cores, quota.spec.ram_mib) == (10, 20, 51200)
    inst = Instance.model_validate({"spec": {"flavor": "f", "image": "i"}})
    assert inst.spec.power_state == "Running"


@pytest.mark.parametrize(
    "spec",
    [{"vcpus": 0, "ramMiB": 64}, {"vcpus": 1, "ramMiB": -1}, {"vcpus": 1, "ramMiB": 64, "x": 1}],
)
def test_invalid_flavor_is_rejected(spec):
    with pytest.raises(ValidationError):
        Flavor.model_validate({"spec": spec})
