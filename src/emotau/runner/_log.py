"""The run's log file: what emotau's loggers say while a run executes.

Retries (``emotau.models``), give-ups, infrastructure errors and worker events go to
``RUN_DIR/logs/emotau.log``; a process that runs one shard of several (``--shard``, the
``--workers`` children, cluster jobs) writes ``RUN_DIR/logs/emotau-shard-I-of-N.log`` instead,
so that no two processes (perhaps on different hosts) append to one file. Nothing of it reaches
the terminal: the handler is attached to the ``emotau`` logger only while the run executes, and
takes only the records of that run (a context variable tells them apart from another run's in
the same process).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from emotau.runner._experiment import Shard

LOGS_DIR = "logs"
RUN_LOG = "emotau.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"

#: the run whose context a record comes from (set by :func:`run_log`)
_RUN: ContextVar[object | None] = ContextVar("emotau_run_log", default=None)


def log_name(shard: Shard) -> str:
    """The log file of a process that runs ``shard``."""
    return RUN_LOG if shard.count == 1 else f"emotau-shard-{shard.index}-of-{shard.count}.log"


class _RunLogHandler(logging.FileHandler):
    def __init__(self, path: Path, token: object, prior_level: int) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.token = token
        self.prior_level = prior_level  # the emotau logger's level before the first run
        self.setLevel(logging.INFO)
        self.setFormatter(logging.Formatter(FORMAT))

    def filter(self, record: logging.LogRecord) -> bool:
        return _RUN.get() is self.token and bool(super().filter(record))


@contextlib.contextmanager
def run_log(run_dir: Path, shard: Shard) -> Iterator[Path]:
    """Send the ``emotau`` loggers' INFO and above to the run's log file while the block runs."""
    logs = run_dir / LOGS_DIR
    logs.mkdir(exist_ok=True)
    path = logs / log_name(shard)
    logger = logging.getLogger("emotau")
    others = [h for h in logger.handlers if isinstance(h, _RunLogHandler)]
    token = object()
    handler = _RunLogHandler(path, token, others[0].prior_level if others else logger.level)
    if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # a level set on purpose is kept
    logger.addHandler(handler)
    reset = _RUN.set(token)
    try:
        yield path
    finally:
        _RUN.reset(reset)
        logger.removeHandler(handler)
        handler.close()
        if not any(isinstance(h, _RunLogHandler) for h in logger.handlers):
            logger.setLevel(handler.prior_level)
