"""The built-in ``hotel`` domain: reservations at four hotels, fully offline and seeded.

``HotelDomain()`` generates its data once (``data.generate``), freezes it, and builds its tasks
lazily from that data (``tasks.build_tasks``). Each episode gets a ``HotelEnvironment``: a
copy-on-write :class:`~emotau.domains.base.Database` over the shared frozen tables, so creating
one is O(1) and only the records an episode changes are ever copied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from emotau.core import Task
from emotau.domains._base import Database, Domain, to_json
from emotau.domains.hotel.data import DEFAULT_SEED, TODAY, generate
from emotau.domains.hotel.tasks import build_tasks
from emotau.domains.hotel.tools import (
    TOOL_SCHEMAS,
    WRITE_TOOLS,
    HotelEnvironment,
    HotelIndex,
)

__all__ = ["DEFAULT_SEED", "TODAY", "HotelDomain", "HotelEnvironment"]


@cache
def _policy_text() -> str:
    return files(__package__).joinpath("policy.md").read_text(encoding="utf-8")


class HotelDomain(Domain):
    """Hotel reservations: cancellations, date and room changes, extras, contact updates."""

    name = "hotel"
    version = "1"
    terminal_tools = frozenset({"transfer_to_human_agents"})
    write_tools = WRITE_TOOLS

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        super().__init__()
        self.seed = seed
        self._base = Database.freeze_tables(generate(seed))
        self._index = HotelIndex(self._base)
        self._tasks: tuple[Task, ...] | None = None

    # ------------------------------------------------------------------ Domain API
    def tasks(self) -> Sequence[Task]:
        if self._tasks is None:
            self._tasks = build_tasks(self._base)
        return self._tasks

    def tools(self) -> list[dict[str, Any]]:
        # the schema dicts are shared; treat them as read-only
        return list(TOOL_SCHEMAS)

    def policy(self) -> str:
        return _policy_text()

    def new_environment(self, task: Task) -> HotelEnvironment:
        return HotelEnvironment(self._base, self._index)

    # ------------------------------------------------------------------ extras
    @property
    def data(self) -> Any:
        """The frozen base tables (``hotels``, ``guests``, ``bookings``); read-only."""
        return self._base

    def data_fingerprint(self) -> str:
        """SHA-256 of the generated base data (equal seeds, equal fingerprints)."""
        return hashlib.sha256(to_json(self._base).encode()).hexdigest()
