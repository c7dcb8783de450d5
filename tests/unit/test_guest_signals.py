"""Console lines that say a guest OS is up (virt/qemu/guest_signals.py)."""

import pytest

from kubenova.models.v1alpha1.states import GuestSignal
from kubenova.virt.driver import DriverError
from kubenova.virt.qemu.guest_signals import compile_regex, first_sign

CLOUD_INIT = (
    "Cloud-init v. 22.4.2 finished at Thu, 03 Dec 2026 19:40:01 +0000. Datasource "
    "DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 84.12 seconds"
)


def test_cloud_inits_final_line():
    text = f"[  OK  ] Started ssh.service\r\n{CLOUD_INIT}\r\n"
    sign = first_sign(text)
    assert sign is not None and sign.signal == GuestSignal.CLOUD_INIT
    assert sign.line == CLOUD_INIT


def test_cloud_inits_other_lines_are_not_the_end():
    text = "Cloud-init v. 22.4.2 running 'modules:final' at Thu, 03 Dec 2026 19:40:00 +0000.\n"
    assert first_sign(text) is None


def test_the_test_guests_announcement():
    sign = first_sign("kubenova-guest booted hostname=a instance-id=b\n")
    assert sign is not None and sign.signal == GuestSignal.ANNOUNCEMENT


def test_a_line_still_being_written_does_not_count():
    assert first_sign(CLOUD_INIT) is None
    assert first_sign("kubenova-guest booted hostname=a instance-id=b") is None


def test_the_images_regex_and_the_first_sign_wins():
    regex = compile_regex(r"^login: $|Welcome to .*OS")
    text = "Welcome to TinyOS 1.0\nkubenova-guest booted hostname=a instance-id=b\n"
    sign = first_sign(text, regex)
    assert sign is not None and (sign.signal, sign.line) == (
        GuestSignal.CONSOLE_REGEX,
        "Welcome to TinyOS 1.0",
    )
    assert first_sign("nothing here\n", regex) is None


def test_a_malformed_regex_says_so():
    with pytest.raises(DriverError, match="kubenova_guest_booted_regex"):
        compile_regex("(unclosed")
    assert compile_regex("") is None and compile_regex(None) is None
