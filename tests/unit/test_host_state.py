"""HostState from a Node: allocatable x allocation ratios minus claims; Ready and cordon."""

from kubenova.scheduler.host_state import AllocationRatios, HostState, NodeSummary
from kubenova.scheduler.resources import Resources


def node(ready="True", unschedulable=False, cpu="4", memory="8Gi", disk="100Gi"):
    return {
        "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "az1"}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "ephemeral-storage": disk},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_summary_parses_quantities_and_flags():
    summary = NodeSummary.of_node(node(cpu="3500m", memory="2048Mi"))
    assert summary.allocatable == Resources(3.5, 2048, 100)
    assert summary.ready and not summary.unschedulable
    assert not NodeSummary.of_node(node(ready="False")).ready
    assert NodeSummary.of_node(node(unschedulable=True)).unschedulable


def test_capacity_applies_novas_initial_ratios_and_subtracts_claims():
    host = HostState.build(NodeSummary.of_node(node()), Resources(2, 1024, 10), AllocationRatios())
    assert host.capacity == Resources(16, 8192, 100)
    assert host.free == Resources(14, 7168, 90)
    assert host.zone == "az1"
    assert Resources(14, 7168, 90).fits_in(host.free)
    assert not Resources(15, 1, 1).fits_in(host.free)


def test_pods_and_own_claims_count_as_used():
    from kubenova.scheduler.host_state import host_states, pod_requests

    pod = pod_requests(
        {
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
                {"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        }
    )
    assert pod == Resources(2, 512, 0)  # the init container's CPU is the larger need

    summary = NodeSummary.of_node(node())
    watched = {"uid-a": {"vcpus": 1, "ramMiB": 1024, "diskGiB": 10}}
    [host] = host_states(
        nodes={"n1": [summary]},
        providers={"n1": [watched]},
        pods={"n1": [pod]},
        placements={},
        ratios=AllocationRatios(),
        failed_builds={},
        # uid-a is known both ways (counted once); uid-b not yet returned by the watch
        own_claims={"n1": {"uid-a": Resources(1, 1024, 10), "uid-b": Resources(2, 2048, 0)}},
    )
    assert host.used == Resources(5, 3584, 10)
