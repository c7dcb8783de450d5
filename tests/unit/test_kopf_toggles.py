"""kopf's ToggleSet patched to wake its waiters only when the set's state changes
(kube/kopf_toggles.py): the same outcomes, one wake-up instead of one per indexed object."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from kubenova.kube import kopf_toggles


def counting(toggles: aiotoggles.ToggleSet) -> list[int]:
    calls = [0]
    notify_all = toggles._condition.notify_all

    def counted() -> None:
        calls[0] += 1
        notify_all()

    toggles._condition.notify_all = counted  # type: ignore[method-assign]
    return calls


def test_installing_twice_patches_once():
    assert kopf_toggles.install()
    assert kopf_toggles.install()
    assert aiotoggles.ToggleSet.drop_toggle is kopf_toggles._drop_toggle


def test_waiters_wake_once_when_the_last_object_is_indexed():
    kopf_toggles.install()

    async def scenario() -> tuple[int, list[bool]]:
        indexed = aiotoggles.ToggleSet(all)  # as kopf's operator_indexed
        objects = [await indexed.make_toggle(name=f"obj-{i}") for i in range(200)]
        woke: list[bool] = []

        async def worker() -> None:
            await indexed.wait_for(True)
            woke.append(indexed.is_on())

        workers = [asyncio.create_task(worker()) for _ in range(50)]
        await asyncio.sleep(0)
        calls = counting(indexed)
        for toggle in objects[:-1]:
            await indexed.drop_toggle(toggle)
            await asyncio.sleep(0)
        assert not woke  # not yet: one object is still being indexed
        await indexed.drop_toggle(objects[-1])
        await asyncio.gather(*workers)
        return calls[0], woke

    calls, woke = asyncio.run(scenario())
    assert woke == [True] * 50
    assert calls == 1  # kopf's own: one per drop (200)


def test_adding_to_a_set_that_is_on_turns_it_off_and_says_so():
    kopf_toggles.install()

    async def scenario() -> None:
        indexed = aiotoggles.ToggleSet(all)
        assert indexed.is_on()  # empty: nothing to wait for
        waiting = asyncio.create_task(indexed.wait_for(False))
        await asyncio.sleep(0)
        toggle = await indexed.make_toggle(name="late")
        await asyncio.wait_for(waiting, 1)
        assert indexed.is_off()
        await indexed.drop_toggles([toggle])
        assert indexed.is_on()

    asyncio.run(scenario())


def test_a_toggles_own_changes_still_wake_its_waiters():
    kopf_toggles.install()

    async def scenario() -> None:
        paused = aiotoggles.ToggleSet(any)  # as kopf's operator_paused
        toggle = await paused.make_toggle(False, name="peering")
        waiting = asyncio.create_task(paused.wait_for(True))
        await asyncio.sleep(0)
        await toggle.turn_to(True)
        await asyncio.wait_for(waiting, 1)
        await paused.drop_toggle(toggle)
        assert paused.is_off()

    asyncio.run(scenario())
