"""Which cached base images the audit keeps: the pure decision of audit/images.py."""

from __future__ import annotations

from kubenova.audit.images import used_checksums

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def image(name: str, checksum: str, namespace: str = "p") -> dict:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"checksum": checksum}}


def instance(image_name: str, namespace: str = "p", **status) -> dict:
    return {
        "metadata": {"namespace": namespace, "name": f"i-{image_name}"},
        "spec": {"image": image_name},
        "status": status,
    }


def test_used_by_instances_here_building_ones_and_volumes_being_made() -> None:
    images = [image("here", A), image("there", B), image("new", C), image("vol", D)]
    instances = [
        instance("here", host="compute-0", vmState="STOPPED"),
        instance("there", host="elsewhere", vmState="ACTIVE"),
        instance("new", vmState="BUILDING", taskState="SCHEDULING"),
        instance("there", vmState="ERROR"),  # a failed build holds nothing
        instance("here", namespace="q", host="compute-0"),  # no Image "here" in q
    ]
    volumes = [
        {"metadata": {"namespace": "p"}, "spec": {"sourceImage": "vol"}, "status": {}},
        {
            "metadata": {"namespace": "p"},
            "spec": {"sourceImage": "there"},
            "status": {"phase": "available"},
        },
    ]
    assert used_checksums(instances, images, volumes, {"compute-0"}) == {A, C, D}
