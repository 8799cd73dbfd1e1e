"""The circuit breaker on its own, with a probe the test controls (issue 13 item 3)."""

from __future__ import annotations

import asyncio
import time

from emotau.runner._breaker import Breaker


class Probe:
    """Fails until ``up`` is set; counts its calls."""

    def __init__(self, up: bool = False, hang: float = 0.0) -> None:
        self.up, self.hang, self.calls = up, hang, 0

    async def __call__(self) -> str | None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(self.hang)
        return None if self.up else f"connection refused ({self.calls})"


def fast(limit: int, wait: float, probe: Probe) -> Breaker:
    return Breaker(limit, wait, probe, first_delay=0.01, max_delay=0.04)


def test_it_stays_closed_below_the_limit_and_a_success_resets_the_count() -> None:
    async def go() -> Breaker:
        b = fast(3, 1.0, Probe())
        for finished in (False, False, True, False, False):
            b.record(finished)
            assert await asyncio.wait_for(b.admit(), 0.5)
        return b

    b = asyncio.run(go())
    assert (b.trips, b.gave_up, b.streak) == (0, None, 2)


def test_it_gives_up_after_the_wait_with_the_last_probe_failure() -> None:
    probe = Probe()

    async def go() -> tuple[bool, float, Breaker]:
        b = fast(2, 0.3, probe)
        b.record(False)
        b.record(False)
        t = time.monotonic()
        ok = await b.admit()  # blocks while it probes, then says no
        return ok, time.monotonic() - t, b

    ok, waited, b = asyncio.run(go())
    assert not ok and b.trips == 1 and b.recovered == 0
    assert 0.25 <= waited < 2.0, waited
    assert probe.calls >= 3  # backoff 0.01, 0.02, 0.04, 0.04, ... within 0.3 s
    assert b.gave_up == f"connection refused ({probe.calls})"


def test_a_good_probe_closes_it_and_episodes_start_again() -> None:
    probe = Probe()

    async def go() -> Breaker:
        b = fast(1, 30.0, probe)
        b.record(False)
        waiting = asyncio.ensure_future(b.admit())
        await asyncio.sleep(0.1)
        assert not waiting.done()  # nothing starts while it probes
        probe.up = True
        assert await asyncio.wait_for(waiting, 1.0)
        await b.close()
        return b

    b = asyncio.run(go())
    assert (b.trips, b.recovered, b.gave_up, b.streak) == (1, 1, None, 0)


def test_an_episode_in_flight_that_finishes_closes_it() -> None:
    async def go() -> Breaker:
        b = fast(1, 30.0, Probe())
        b.record(False)
        waiting = asyncio.ensure_future(b.admit())
        await asyncio.sleep(0.05)
        b.record(True)  # it was slow, not dead
        assert await asyncio.wait_for(waiting, 1.0)
        return b

    b = asyncio.run(go())
    assert (b.trips, b.recovered, b._probing) == (1, 1, None)


def test_a_hanging_probe_cannot_hold_the_breaker_past_its_wait() -> None:
    async def go() -> tuple[bool, float, Breaker]:
        b = Breaker(1, 0.2, Probe(hang=60), first_delay=0.01, probe_timeout=0.3)
        b.record(False)
        t = time.monotonic()
        ok = await b.admit()
        return ok, time.monotonic() - t, b

    ok, waited, b = asyncio.run(go())
    assert not ok and waited < 5.0, waited
    assert b.gave_up is not None and "no answer in" in b.gave_up


def test_limit_zero_turns_it_off_and_wait_zero_gives_up_at_once() -> None:
    async def go() -> tuple[Breaker, Breaker, bool]:
        off = fast(0, 1.0, Probe())
        for _ in range(100):
            off.record(False)
        assert await off.admit()
        now = fast(1, 0.0, probe := Probe())
        now.record(False)
        ok = await asyncio.wait_for(now.admit(), 1.0)
        assert probe.calls == 0
        return off, now, ok

    off, now, ok = asyncio.run(go())
    assert off.trips == 0 and not ok
    assert now.gave_up is not None and "breaker_wait is 0" in now.gave_up
