"""The one retry loop (models/_retry.py) and the run's log file (runner/_log.py)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from emotau.core._chat import RetryBudget
from emotau.models._config import RetryConfig
from emotau.models._retry import RetriesExhausted, call_with_retries
from emotau.runner._experiment import Shard
from emotau.runner._log import log_name, run_log


class Flaky(Exception):
    pass


def _reason(exc: BaseException) -> str | None:
    return "flaky" if isinstance(exc, Flaky) else None


def _failing(n: int, exc: type[Exception] = Flaky):
    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if calls["n"] <= n:
            raise exc("boom")
        return "ok"

    return call, calls


def _go(call, policy: RetryConfig, budget: RetryBudget | None = None):
    return asyncio.run(call_with_retries(call, policy, _reason, "agent at http://x", budget))


def test_success_after_failures_counts_the_retries_and_logs_each(caplog) -> None:
    caplog.set_level(logging.INFO, logger="emotau.models")
    call, calls = _failing(3)
    policy = RetryConfig(max_attempts=6, base_delay=0.004, max_delay=0.01)
    assert _go(call, policy) == ("ok", 3) and calls["n"] == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "emotau.models"]
    assert len(lines) == 3
    for n, line in enumerate(lines, 1):
        m = re.fullmatch(rf"agent at http://x: flaky; retry {n} of 5 in ([\d.]+) s", line)
        assert m, line
        # full jitter: somewhere in [0, min(max_delay, base_delay * 2 ** (n - 1))]
        assert 0 <= float(m[1]) <= min(0.01, 0.004 * 2 ** (n - 1)) + 0.005


def test_attempts_then_budget_run_out() -> None:
    policy = RetryConfig(max_attempts=3, base_delay=0.0, max_delay=0.0)
    call, calls = _failing(10)
    with pytest.raises(RetriesExhausted, match=r"^flaky, 3 attempts failed$") as exc:
        _go(call, policy)
    assert calls["n"] == 3 and isinstance(exc.value.__cause__, Flaky)
    budget = RetryBudget(1)
    call, calls = _failing(10)
    with pytest.raises(RetriesExhausted, match="retry budget is spent") as exc:
        _go(call, RetryConfig(max_attempts=10, base_delay=0.0), budget)
    assert calls["n"] == 2 and exc.value.budget_spent and budget.used == 1


def test_what_is_not_retryable_propagates_at_once_and_spends_nothing() -> None:
    budget = RetryBudget(5)
    call, calls = _failing(1, ValueError)
    with pytest.raises(ValueError, match="boom"):
        _go(call, RetryConfig(base_delay=0.0), budget)
    assert calls["n"] == 1 and budget.used == 0


def test_run_log_takes_only_its_runs_records_and_leaves_nothing_behind(tmp_path) -> None:
    logger = logging.getLogger("emotau")
    level, handlers = logger.level, list(logger.handlers)
    logging.getLogger("emotau.models").info("before the run")
    with run_log(tmp_path, Shard()) as path:
        assert path == tmp_path / "logs" / "emotau.log"
        logging.getLogger("emotau.models").info("a retry")

        async def elsewhere() -> None:  # a task inherits the run's context
            logging.getLogger("emotau.runner").warning("from a task")

        asyncio.run(elsewhere())
    logging.getLogger("emotau.models").warning("after the run")
    text = path.read_text()
    assert "INFO emotau.models" in text and "a retry" in text and "from a task" in text
    assert "before" not in text and "after" not in text
    assert logger.level == level and logger.handlers == handlers
    assert log_name(Shard(1, 4)) == "emotau-shard-1-of-4.log"
