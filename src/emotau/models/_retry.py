"""The one retry loop of model calls: episodes, the run's preflight and ``emotau doctor``.

Built on ``tenacity``: exponential backoff with full jitter (a wait drawn uniformly from ``[0,
min(max_delay, base_delay * 2 ** (attempt - 1))]``), at most ``max_attempts`` attempts, and,
for an episode's calls, one retry taken from the episode's :class:`RetryBudget` before each
wait. A ``Retry-After`` header (seconds or an HTTP date, e.g. with a 429 or a 503) makes the
wait at least that long, up to :data:`MAX_RETRY_AFTER`. Every retry and every give-up is logged
at INFO on ``emotau.models`` with where and why (the caller passes a ``where`` and a ``reason``
that are already redacted); what a give-up costs is the caller's to report (an episode's
infrastructure error, a refused preflight).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import tenacity

if TYPE_CHECKING:
    from emotau.core import RetryBudget
    from emotau.models._config import RetryConfig

log = logging.getLogger("emotau.models")

T = TypeVar("T")

#: called before each wait of a retry loop, with the attempt that failed (1-based), the most
#: attempts, the failure's short description and the seconds until the next attempt
OnRetry = Callable[[int, int, str, float], None]


class RetriesExhausted(Exception):
    """The last failure was retryable, but attempts or the episode's budget ran out.

    ``__cause__`` is the last exception; ``reason`` its short (redacted) description.
    """

    def __init__(self, reason: str, attempts: int, budget_spent: bool) -> None:
        self.reason = reason
        self.attempts = attempts
        self.budget_spent = budget_spent
        super().__init__(
            f"{reason}; the episode's retry budget is spent"
            if budget_spent
            else f"{reason}, {attempts} attempts failed"
        )


class _BudgetSpent(tenacity.stop.stop_base):
    """Stops when the episode's budget has no retry left; takes one otherwise."""

    def __init__(self, budget: RetryBudget | None) -> None:
        self.budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.budget is not None and not self.budget.take()


#: the longest wait a server's Retry-After is granted (a longer one is cut to this)
MAX_RETRY_AFTER = 300.0


def retry_after(exc: BaseException | None, now: float | None = None) -> float | None:
    """The seconds an HTTP error's ``Retry-After`` header asks to wait (a number of seconds or
    an HTTP date), or None when there is none or it cannot be read."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _RetryAfter(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, but never shorter than what the server asked for with
    ``Retry-After`` (at most :data:`MAX_RETRY_AFTER` s)."""

    def __init__(self, policy: RetryConfig) -> None:
        self._backoff = tenacity.wait_random_exponential(
            multiplier=policy.base_delay, max=policy.max_delay
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self._backoff(retry_state)
        outcome = retry_state.outcome
        asked = retry_after(outcome.exception() if outcome is not None else None)
        return max(wait, min(asked, MAX_RETRY_AFTER)) if asked is not None else wait


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryConfig,
    reason: Callable[[BaseException], str | None],
    where: str,
    budget: RetryBudget | None = None,
    on_retry: OnRetry | None = None,
) -> tuple[T, int]:
    """``await call()`` until it succeeds; return its result and how many retries it took.

    An exception for which ``reason`` gives None propagates at once, as it is. When a
    retryable one is the last (``max_attempts`` reached or ``budget`` spent),
    :class:`RetriesExhausted` is raised from it. ``on_retry`` hears of each retry before its
    wait (the preflight shows them to the user).
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        why = str(reason(state.outcome.exception()))  # type: ignore[arg-type]
        log.info(
            "%s: %s; retry %d of %d in %.2f s",
            where,
            why,
            state.attempt_number,
            policy.max_attempts - 1,
            state.next_action.sleep,
        )
        if on_retry is not None:
            on_retry(state.attempt_number, policy.max_attempts, why, state.next_action.sleep)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(lambda exc: reason(exc) is not None),
        stop=tenacity.stop_after_attempt(policy.max_attempts) | _BudgetSpent(budget),
        wait=_RetryAfter(policy),
        before_sleep=before_sleep,
    )
    try:
        async for attempt in retrying:
            with attempt:
                result = await call()
            if attempt.retry_state.outcome is not None and not attempt.retry_state.outcome.failed:
                return result, attempt.retry_state.attempt_number - 1
    except tenacity.RetryError as err:
        last = err.last_attempt
        exc = last.exception()
        assert exc is not None
        why = reason(exc) or type(exc).__name__
        n = last.attempt_number
        exhausted = RetriesExhausted(why, n, budget_spent=n < policy.max_attempts)
        log.info("%s: giving up: %s", where, exhausted)
        raise exhausted from exc
    raise AssertionError("unreachable")
