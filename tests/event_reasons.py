"""A check over the whole suite: every Event reason the operator declares (kube/events.py
`Reason`) is seen on the apiserver at least once.

For every dev control plane the fixtures start (tests/conftest.py `cluster`), a thread watches
Events in all namespaces from its start (a test's namespace, and its Events, are deleted when the
test ends) and records the reasons of those kubenova's component posted. When the session ends
the declared reasons never seen fail the run, but only when the whole of tests/ ran: all of it
collected (no path or node id narrower than tests/, no --ignore), nothing deselected (-k, -m,
--deselect, --lf, --sw), and the run not stopped early (-x, --maxfail, Ctrl-C). A reason no test
triggers wants a test; a reason no code emits any more wants deleting.

KUBENOVA_EVENT_REASONS=check forces the check on any selection, =off turns it off.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from kubenova import GROUP
from kubenova.kube.events import COMPONENT, Reason

TESTS = Path(__file__).resolve().parent
ENV = "KUBENOVA_EVENT_REASONS"


class ReasonWatch:
    """Records the reasons of kubenova's Events on one apiserver, from a thread."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="event-reasons", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, after one last list (what the watch has not delivered yet)."""
        self._stop.set()
        with (
            contextlib.suppress(Exception),
            config.new_client_from_config(str(self.kubeconfig)) as api,
        ):
            self._record(client.CoreV1Api(api).list_event_for_all_namespaces().items)
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=15)

    def _record(self, events) -> None:
        """Only the operator's Events about its own kinds and its leader election Lease (a test
        posting through the recorder about a ConfigMap proves nothing about the operator)."""
        for event in events:
            source = event.source.component if event.source else None
            involved = event.involved_object
            about = (involved.api_version or "") if involved else ""
            ours = about.startswith(f"{GROUP}/") or (
                about == "coordination.k8s.io/v1" and involved.kind == "Lease"
            )
            if COMPONENT in (source, event.reporting_component) and ours and event.reason:
                self.seen.add(event.reason)

    def _run(self) -> None:
        with config.new_client_from_config(str(self.kubeconfig)) as api:
            core = client.CoreV1Api(api)
            version = None
            while not self._stop.is_set():
                try:
                    if version is None:  # (again) from a list: a watch resumes after it
                        listed = core.list_event_for_all_namespaces()
                        self._record(listed.items)
                        version = listed.metadata.resource_version
                    self._watch = watch.Watch()
                    for change in self._watch.stream(
                        core.list_event_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=5,
                    ):
                        if change["type"] in ("ADDED", "MODIFIED"):
                            self._record([change["object"]])
                        version = self._watch.resource_version or version
                        if self._stop.is_set():
                            break
                except client.ApiException as err:
                    if err.status == 410:  # the version is too old: list again
                        version = None
                    else:
                        time.sleep(0.5)
                except Exception:  # the apiserver restarting (a resilience test): go on
                    time.sleep(0.5)


class ReasonCheck:
    """The session's state: what the control planes saw, what the selection was."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.clusters = 0
        self.deselected = 0
        self.outcome: str | None = None
        """What the terminal summary says (None: nothing to say)."""

    @contextlib.contextmanager
    def watching(self, kubeconfig: Path) -> Iterator[ReasonWatch]:
        reasons = ReasonWatch(kubeconfig)
        reasons.start()
        self.clusters += 1
        try:
            yield reasons
        finally:
            reasons.stop()
            self.seen |= reasons.seen

    def why_not_whole(self, session: pytest.Session, exitstatus: int) -> str | None:
        """Why this run is not the whole suite, or None when it is."""
        options = session.config.option
        if getattr(options, "collectonly", False):
            return "only collected"
        if self.deselected:
            return f"{self.deselected} test(s) deselected"
        if getattr(options, "ignore", None) or getattr(options, "ignore_glob", None):
            return "part of tests/ ignored"
        here = session.config.invocation_params.dir
        covering = [
            arg
            for arg in session.config.args
            if "::" not in arg and TESTS.is_relative_to((here / arg).resolve())
        ]
        if not covering:
            return "only part of tests/ selected"
        if session.shouldstop or session.shouldfail or exitstatus == pytest.ExitCode.INTERRUPTED:
            return "the run stopped early"
        return None

    def finish(
        self, session: pytest.Session, exitstatus: int, declared: set[str] | None = None
    ) -> None:
        """Fail the session if it ran the whole suite and a reason in `declared` (default:
        kube/events.py's) was never seen."""
        mode = os.environ.get(ENV, "auto")
        if mode == "off":
            return
        why_not = None if mode == "check" else self.why_not_whole(session, exitstatus)
        declared = {reason.value for reason in Reason} if declared is None else declared
        unseen = sorted(declared - self.seen)
        tally = f"{len(declared & self.seen)} of {len(declared)} declared event reasons seen"
        if why_not is not None:
            if self.clusters:
                self.outcome = f"{tally}; not checked ({why_not}); not seen: {', '.join(unseen)}"
            return
        if unseen:
            self.outcome = (
                f"FAILED: {tally} on {self.clusters} control plane(s); never seen: "
                f"{', '.join(unseen)} (each wants a test that makes it, or its reason deleted "
                "from kube/events.py)"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            self.outcome = f"{tally}: every one"


CHECK = ReasonCheck()


def pytest_deselected(items) -> None:
    CHECK.deselected += len(items)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    CHECK.finish(session, exitstatus)


def pytest_terminal_summary(terminalreporter) -> None:
    if CHECK.outcome is not None:
        terminalreporter.write_sep("-", "event reasons")
        terminalreporter.write_line(CHECK.outcome)
