"""Image import on the real apiserver: glance's phases in order (watched), bytes saved while
saving, every failure ending `killed` with a build on it failing with a fault, and the audit's
base-image housekeeping (an unused image removed after its grace, a used one kept).

The operator runs as a real process with Nova's FakeDriver; Images come from files in pytest's
temp directory (allowed by the tests' import policy) and from an HTTP server on loopback (an
explicit allowance of 127.0.0.1/32 and its port).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import watch

from kubenova import GROUP, VERSION
from tests.cloud import Cloud, remove_test_hosts
from tests.kit import running_operator, wait_for

pytestmark = pytest.mark.integration

MIB = 1 << 20
SLOW = os.urandom(3 * MIB + 5)
GRACE = 2.0


class SlowServer:
    """Serves SLOW on 127.0.0.1: the first 2 MiB, then the rest once `go` is set (the test
    sets it when it has seen the operator report bytes saved: no race, no sleep)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(SLOW)))
                self.end_headers()
                self.wfile.write(SLOW[: 2 * MIB])
                self.wfile.flush()
                outer.go.wait(60)
                self.wfile.write(SLOW[2 * MIB :])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]


@pytest.fixture(scope="module")
def slow_server() -> Iterator[SlowServer]:
    srv = SlowServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.go.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(scope="class")
def image_operator(cluster, api, crds, tmp_path_factory, slow_server):
    work = tmp_path_factory.mktemp("image-op")
    args = (
        "--driver=fake",
        "--image-allowed-network=127.0.0.1/32",
        f"--image-allowed-port={slow_server.port}",
        "--audit-interval=0.5",
        f"--remove-unused-original-minimum-age-seconds={GRACE:g}",
    )
    with running_operator(cluster, api, work, *args) as op:
        yield op
    remove_test_hosts(api)


@pytest.fixture
def cloud(image_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


def image_body(name: str, source: str, checksum: str, fmt: str = "raw") -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {"source": source, "checksum": checksum, "diskFormat": fmt},
    }


def image_status(cloud: Cloud, name: str) -> dict:
    obj = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "images", name)
    return obj.get("status") or {}


def ended(cloud: Cloud, name: str, timeout: float = 60) -> dict:
    def done():
        status = image_status(cloud, name)
        return status if status.get("phase") in ("active", "killed") else None

    return wait_for(done, timeout, f"image {name} to become active or killed")


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class TestImport:
    """One operator for these (class scope: TestMissingTool's must not run beside it)."""

    def test_phases_in_order_with_bytes_saved(self, cloud, slow_server):
        """queued -> saving (bytes so far) -> active, as a watch on the apiserver sees them."""
        checksum = hashlib.sha256(SLOW).hexdigest()
        created = cloud.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            cloud.ns,
            "images",
            image_body("slow", f"http://127.0.0.1:{slow_server.port}/slow.raw", checksum),
        )
        seen: list[tuple[str | None, int | None]] = []
        final: dict = {}
        stream = watch.Watch()
        for event in stream.stream(
            cloud.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            cloud.ns,
            "images",
            field_selector="metadata.name=slow",
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=90,
        ):
            status = event["object"].get("status") or {}
            seen.append((status.get("phase"), status.get("bytesSaved")))
            if status.get("phase") == "saving" and (status.get("bytesSaved") or 0) >= MIB:
                slow_server.go.set()  # the rest of the image, now that progress was reported
            if status.get("phase") in ("active", "killed"):
                stream.stop()
                final = status
        phases = [p for i, (p, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != p]
        assert phases == ["queued", "saving", "active"], seen
        assert any(p == "saving" and 0 < (b or 0) < len(SLOW) for p, b in seen), seen
        assert final["sizeBytes"] == final["bytesSaved"] == len(SLOW)

    def test_printer_columns_show_phase_and_bytes(self, cloud, kubectl):
        ended(cloud, "tiny")
        out = kubectl("get", "images", "-n", cloud.ns)
        assert out.returncode == 0, out.stderr
        header, row = out.stdout.splitlines()[:2]
        assert header.split() == ["NAME", "STATUS", "FORMAT", "SAVED", "SIZE", "AGE"]
        assert row.split()[:5] == ["tiny", "active", "raw", "4096", "4096"]

    def test_a_failed_import_is_killed_and_a_build_on_it_fails(self, cloud):
        missing = cloud.disk.with_name("missing.raw")
        cloud.custom.create_namespaced_custom_object(
            GROUP, VERSION, cloud.ns, "images", image_body("gone", str(missing), "0" * 64)
        )
        status = ended(cloud, "gone")
        assert status["phase"] == "killed"
        assert status["message"] == (
            f"fetching {missing} failed: [Errno 2] No such file or directory: '{missing}'"
        )
        cloud.node("h")
        cloud.instance("vm", spec={"image": "gone"})
        settled = cloud.settled("vm")
        assert settled["vmState"] == "ERROR"
        assert settled["fault"]["message"] == f"Image gone is killed: {status['message']}"
        assert settled["fault"]["code"] == 400

    def test_a_checksum_mismatch_names_only_the_expected_sum(self, cloud):
        wrong = hashlib.sha256(b"something else").hexdigest()
        actual = hashlib.sha256(cloud.disk.read_bytes()).hexdigest()
        cloud.custom.create_namespaced_custom_object(
            GROUP, VERSION, cloud.ns, "images", image_body("wrong", str(cloud.disk), wrong)
        )
        status = ended(cloud, "wrong")
        assert status["phase"] == "killed"
        assert status["message"] == (
            f"checksum mismatch for {cloud.disk}: the bytes read do not have sha256 {wrong}"
        )
        assert actual not in status["message"] and "4096" not in status["message"]
        assert "sizeBytes" not in status and "bytesSaved" not in status

    def test_unused_base_image_removed_after_grace_and_used_one_kept(
        self, cloud, image_operator, tmp_path
    ):
        base = image_operator.state_dir / "_base"
        tiny = hashlib.sha256(cloud.disk.read_bytes()).hexdigest()
        unused_file = tmp_path / "unused.raw"
        unused_file.write_bytes(b"\1" * 8192)
        unused = hashlib.sha256(unused_file.read_bytes()).hexdigest()
        cloud.custom.create_namespaced_custom_object(
            GROUP, VERSION, cloud.ns, "images", image_body("unused", str(unused_file), unused)
        )
        assert ended(cloud, "unused")["phase"] == "active"
        assert ended(cloud, "tiny")["phase"] == "active"
        cloud.node("h")
        cloud.instance("vm")
        assert cloud.settled("vm")["vmState"] == "ACTIVE"
        before = metrics(image_operator.metrics_port)

        wait_for(lambda: not (base / unused).exists(), 60, "the unused base image to be removed")
        after = metrics(image_operator.metrics_port)
        assert (
            after["kubenova_image_cache_removed_total"]
            - before.get("kubenova_image_cache_removed_total", 0)
            >= 1
        )
        assert (
            after["kubenova_image_cache_removed_bytes_total"]
            - before.get("kubenova_image_cache_removed_bytes_total", 0)
            >= 8192
        )
        # The used one is kept however old its file: make it older than the grace, let two more
        # audits run, and it is still there (an unused one that old was just removed).
        old = time.time() - 10 * GRACE
        os.utime(base / tiny, (old, old))
        runs = after["kubenova_audit_runs_total"]
        wait_for(
            lambda: metrics(image_operator.metrics_port)["kubenova_audit_runs_total"] >= runs + 2,
            30,
            "two more audits",
        )
        assert (base / tiny).is_file()
        assert image_status(cloud, "unused")["phase"] == "active"  # glance still has it

        # Once no instance uses it, it goes too.
        cloud.delete("vm")
        wait_for(lambda: not (base / tiny).exists(), 60, "the no longer used base image to go")


@pytest.fixture(scope="class")
def toolless_operator(cluster, api, crds, tmp_path_factory):
    work = tmp_path_factory.mktemp("toolless-op")
    bindir = work / "bin"
    bindir.mkdir()
    env = {**os.environ, "PATH": str(bindir), "KUBENOVA_BIN_DIR": str(bindir)}
    with running_operator(cluster, api, work, "--driver=fake", env=env) as op:
        yield op


class TestMissingTool:
    """qemu-img missing from the operator's PATH: a permanent error, killed, not retried."""

    def test_missing_qemu_img_kills_the_image(self, toolless_operator, api, namespace, tmp_path):
        if Path(__file__).resolve().parents[2].joinpath(".bin", "qemu-img").exists():
            pytest.skip("qemu-img is in the repo's .bin, which find_tool always looks in")
        cloud = Cloud(api, namespace, tmp_path)
        status = ended(cloud, "tiny")
        assert status["phase"] == "killed"
        assert status["message"].startswith("qemu-img not found")


@pytest.fixture(scope="class")
def pod_operator(cluster, api, crds, tmp_path_factory):
    work = tmp_path_factory.mktemp("pod-image-op")
    with running_operator(cluster, api, work, "--driver=pod") as op:
        yield op


class TestClusterDriver:
    """With the pod driver only, the operator downloads nothing: the VM's node fetches and
    verifies the image; the source is still checked against the policy."""

    def test_images_are_checked_not_downloaded(self, pod_operator, api, namespace, tmp_path):
        cloud = Cloud(api, namespace, tmp_path)
        status = ended(cloud, "tiny")
        assert status["phase"] == "active"
        assert status["message"] == "source allowed; fetched and verified on the compute node"
        assert "sizeBytes" not in status
        base = pod_operator.state_dir / "_base"
        assert not base.exists() or not list(base.iterdir())
        cloud.custom.create_namespaced_custom_object(
            GROUP, VERSION, cloud.ns, "images", image_body("shadow", "/etc/shadow", "0" * 64)
        )
        shadow = ended(cloud, "shadow")
        assert shadow["phase"] == "killed"
        assert shadow["message"].startswith(
            "image source /etc/shadow refused by image import policy: host paths must resolve"
        )
