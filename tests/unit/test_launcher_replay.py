"""How much of a kept console log a restarted launcher repeats (virt/qemu/launcher.py)."""

from __future__ import annotations

from kubenova.virt.qemu.launcher import replay_from


def test_a_short_log_is_repeated_whole(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"boot\npowering off\n")
    assert replay_from(log, log.stat().st_size, limit=1024) == 0


def test_a_long_log_is_repeated_from_a_line_start_within_the_limit(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"a" * 100 + b"\n" + b"b" * 10 + b"\nlast line\n")
    end = log.stat().st_size
    start = replay_from(log, end, limit=25)
    assert log.read_bytes()[start:] == b"b" * 10 + b"\nlast line\n"
    assert end - start <= 25


def test_no_line_start_in_the_window_repeats_nothing(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"x" * 100)
    assert replay_from(log, 100, limit=10) == 100
