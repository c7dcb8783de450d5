"""Which operator pod `kubenova console` port-forwards to (console/forward.py)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from kubenova.console.forward import ForwardError, PortForward, console_pods


def pod(name: str, phase="Running", ready=True, console_port: int | None = 9465, deleting=False):
    ports = [NS(name="metrics", container_port=9464)]
    if console_port:
        ports.append(NS(name="console", container_port=console_port))
    return NS(
        metadata=NS(name=name, deletion_timestamp="now" if deleting else None),
        status=NS(phase=phase, conditions=[NS(type="Ready", status="True" if ready else "False")]),
        spec=NS(containers=[NS(ports=ports)]),
    )


class Core:
    def __init__(self, pods):
        self.pods = pods

    def list_namespaced_pod(self, namespace, label_selector):
        assert label_selector == "app.kubernetes.io/name=kubenova"
        return NS(items=self.pods)


def test_the_lease_holder_comes_first_then_ready_pods():
    core = Core([pod("op-a"), pod("op-b", ready=False), pod("op-c")])
    assert console_pods(core, "ns", {"op-c_1234"}) == [
        ("op-c", 9465),
        ("op-a", 9465),
        ("op-b", 9465),
    ]
    assert console_pods(core, "ns")[0] == ("op-a", 9465)


def test_pods_without_a_console_port_or_not_running_are_left_out():
    core = Core(
        [
            pod("pending", phase="Pending"),
            pod("going", deleting=True),
            pod("noconsole", console_port=None),
            pod("other-port", console_port=9999),
        ]
    )
    assert console_pods(core, "ns") == [("other-port", 9999)]


def test_no_pod_says_what_to_check():
    with pytest.raises(ForwardError, match=r"console\.enabled"):
        PortForward(Core([]), "kubenova-system", [])
