"""The suite's event-reason check (tests/event_reasons.py) fails a whole run that missed a
reason, and judges only whole runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kubenova.kube.events import Reason
from tests.event_reasons import ENV, TESTS, ReasonCheck

ROOT = TESTS.parent
DECLARED = {r.value for r in Reason}


def session(*args: str, **options) -> SimpleNamespace:
    """What the check reads of a pytest session: its arguments, options and stop flags."""
    config = SimpleNamespace(
        args=list(args),
        option=SimpleNamespace(**options),
        invocation_params=SimpleNamespace(dir=ROOT),
    )
    return SimpleNamespace(config=config, shouldstop=False, shouldfail=False, exitstatus=0)


def checked(seen: set[str], run: SimpleNamespace, declared=None, deselected=0) -> ReasonCheck:
    check = ReasonCheck()
    check.seen, check.clusters, check.deselected = set(seen), 1, deselected
    check.finish(run, pytest.ExitCode.OK, declared)  # type: ignore[arg-type]
    return check


@pytest.fixture(autouse=True)
def auto(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.mark.parametrize("args", [("tests",), (".",), (str(TESTS),), ("tests/",)])
def test_a_whole_run_that_saw_every_reason_passes(args):
    run = session(*args)
    check = checked(DECLARED, run)
    assert run.exitstatus == 0 and check.outcome.endswith("every one")


def test_a_whole_run_that_missed_a_declared_reason_fails_naming_it():
    run = session("tests")
    check = checked(DECLARED, run, declared=DECLARED | {"BogusReason"})
    assert run.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert check.outcome.startswith("FAILED") and "never seen: BogusReason" in check.outcome


@pytest.mark.parametrize(
    ("run", "deselected", "why"),
    [
        (session("tests/unit"), 0, "only part of tests/ selected"),
        (session("tests/integration/test_status.py::test_x"), 0, "only part"),
        (session("tests"), 3, "3 test(s) deselected"),
        (session("tests", ignore=["tests/e2e"]), 0, "ignored"),
        (session("tests", collectonly=True), 0, "only collected"),
    ],
)
def test_part_of_the_suite_is_not_judged(run, deselected, why):
    check = checked(set(), run, deselected=deselected)
    assert run.exitstatus == 0 and why in check.outcome


def test_a_run_stopped_early_is_not_judged():
    run = session("tests")
    run.shouldfail = "stopping after 1 failures"
    check = checked(set(), run)
    assert run.exitstatus == 0 and "stopped early" in check.outcome


def test_the_environment_forces_or_silences_it(monkeypatch):
    monkeypatch.setenv(ENV, "check")
    run = session("tests/unit")
    checked(set(), run)
    assert run.exitstatus == pytest.ExitCode.TESTS_FAILED
    monkeypatch.setenv(ENV, "off")
    run = session("tests")
    assert checked(set(), run).outcome is None and run.exitstatus == 0


def test_the_tests_directory_is_this_one():
    assert Path(__file__).resolve().parent.parent == TESTS
