"""The circuit breaker: an endpoint that fails every call must not burn the rest of the grid.

It counts the episodes that end in infrastructure errors in a row. At ``limit`` it opens: no
episode starts while it probes the endpoints (one cheap request each, no retries) with
exponential backoff for up to ``wait`` seconds. The first good probe, or an episode in flight
that finishes after all, closes it and the run carries on; if none comes in time the breaker
gives up and the run starts no more episodes (the CLI exits with EXIT_ENDPOINT_DOWN, the grid
left for a resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("emotau.runner")

#: the first wait before a probe, and the longest one (seconds); each failed probe doubles it
FIRST_PROBE_DELAY, MAX_PROBE_DELAY = 1.0, 60.0
#: the shortest time a probe may take before it counts as failed (seconds); a probe may take
#: as long as the wait has left, and no longer (a server that hangs must not hold the breaker)
PROBE_TIMEOUT = 10.0


class Breaker:
    """One run's (one shard's) circuit breaker; ``probe()`` answers None when the endpoints
    work, else what failed, in a few words. ``limit`` 0 turns the breaker off."""

    def __init__(
        self,
        limit: int,
        wait: float,
        probe: Callable[[], Awaitable[str | None]],
        *,
        first_delay: float = FIRST_PROBE_DELAY,
        max_delay: float = MAX_PROBE_DELAY,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.limit, self.wait, self.probe = limit, wait, probe
        self.first_delay, self.max_delay, self.probe_timeout = first_delay, max_delay, probe_timeout
        self.streak = 0
        self.trips = 0  #: how often it opened
        self.recovered = 0  #: how often it closed again
        self.gave_up: str | None = None  #: the last probe's failure, once it gave up
        self._probing: asyncio.Task[None] | None = None
        self._may_start = asyncio.Event()  #: clear while it probes
        self._may_start.set()

    async def admit(self) -> bool:
        """Whether the next episode may start: waits while the breaker probes; False once it
        has given up."""
        await self._may_start.wait()
        return self.gave_up is None

    def record(self, finished: bool) -> None:
        """An episode ended: ``finished``, or as an infrastructure error."""
        if finished:
            self.streak = 0
            if self._probing is not None:  # it came back while we probed
                self._probing.cancel()
                self._close("an episode in flight finished")
            return
        self.streak += 1
        tripped = self.limit and self.streak >= self.limit
        if tripped and self._probing is None and self.gave_up is None:
            self.trips += 1
            log.warning(
                "circuit breaker opened: %d episodes in a row ended in infrastructure errors; "
                "none starts while the endpoints are probed (for up to %g s)",
                self.streak,
                self.wait,
            )
            self._may_start.clear()
            self._probing = asyncio.ensure_future(self._probe_until_back())

    async def close(self) -> None:
        """Stop probing (the run is over)."""
        if self._probing is not None:
            self._probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probing
            self._probing = None
        self._may_start.set()

    def _close(self, why: str) -> None:
        self._probing = None
        self._may_start.set()
        self.streak = 0
        self.recovered += 1
        log.warning("circuit breaker closed: %s; episodes start again", why)

    async def _one_probe(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.probe(), timeout)
        except TimeoutError:
            return f"the probe got no answer in {timeout:g} s"

    async def _probe_until_back(self) -> None:
        start = time.monotonic()
        delay, last = self.first_delay, "no probe was made (retry.breaker_wait is 0)"
        while (left := self.wait - (time.monotonic() - start)) > 0:
            nap = min(delay, left)
            await asyncio.sleep(nap)
            failed = await self._one_probe(max(left - nap, self.probe_timeout))
            if failed is None:
                self._close(f"the endpoints answered after {time.monotonic() - start:.0f} s")
                return
            last = failed
            delay = min(delay * 2, self.max_delay)
            left = self.wait - (time.monotonic() - start)
            log.warning("probe failed: %s; %.0f s left to wait", failed, max(left, 0))
        self.gave_up = last
        self._probing = None
        self._may_start.set()
        log.warning(
            "circuit breaker gave up: the endpoints did not answer in %g s; no more episodes start",
            self.wait,
        )
