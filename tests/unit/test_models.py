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


@pytest.mark.parametrize("doc", example_docs(), ids=lambda d: d["kind"])
def test_example_parses_and_round_trips(doc):
    obj = BY_KIND[doc["kind"]].model_validate(doc)
    assert obj.to_api()["spec"] == {**doc["spec"], **obj.to_api()["spec"]}
    assert obj.to_api()["kind"] == doc["kind"]


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
