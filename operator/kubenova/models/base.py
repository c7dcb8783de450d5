"""Building blocks shared by every kind: naming, field types, CRD metadata, the resource shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubenova import API_VERSION

# A reference to another object by name: a Kubernetes DNS subdomain.
ObjectName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
# An IPv4 or IPv6 address; the CEL check gives a precise message, maxLength bounds CEL's cost.
IPAddress = Annotated[
    str,
    Field(
        max_length=45,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "isIP(self)", "message": "must be an IP address"}]
        },
    ),
]
LabelMap = Annotated[
    dict[Annotated[str, Field(max_length=317)], Annotated[str, Field(max_length=253)]],
    Field(max_length=64),
]


def cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    """One CEL validation rule for `x-kubernetes-validations`."""
    return {"rule": rule, "message": message, **extra}


def validations(*rules: dict[str, Any]) -> ConfigDict:
    """A model config that puts CEL rules on the model's own schema."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


def immutable(what: str) -> dict[str, Any]:
    return cel("self == oldSelf", f"{what} is immutable")


class KubeModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, as in the CRD."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the apiserver wants it: aliases, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(KubeModel):
    """A standard Kubernetes condition, so `kubectl wait --for=condition=...` works."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str | None = Field(default=None, max_length=1024)
    message: str | None = Field(default=None, max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str | None = None


@dataclass(frozen=True)
class CRDInfo:
    """What a CRD needs besides the schema: names, scope, kubectl columns, object-level rules."""

    plural: str
    scope: Literal["Namespaced", "Cluster"]
    short_names: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = ()
    # CEL rules on the whole object (they may read metadata.name).
    rules: tuple[dict[str, Any], ...] = ()
    categories: tuple[str, ...] = ("nova",)
    extra: dict[str, Any] = field(default_factory=dict)


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


class Resource(BaseModel):
    """A whole object of one of our kinds. Subclasses set `spec`, `status` and `crd`."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    crd: ClassVar[CRDInfo]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def kind(cls) -> str:
        return cls.__name__

    def to_api(self) -> dict[str, Any]:
        """The whole object as the apiserver wants it."""
        body: dict[str, Any] = {"apiVersion": API_VERSION, "kind": self.kind()}
        body["metadata"] = self.metadata
        for part in ("spec", "status"):
            value = getattr(self, part, None)
            if value is not None:
                body[part] = value.to_api()
        return body
