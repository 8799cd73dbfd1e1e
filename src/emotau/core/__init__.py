"""Shared foundations of every other package (errors, registry, shared types, the record).

Only names listed in ``__all__`` are public; the rest lives in the private modules.
"""

from emotau.core._record import (
    SCHEMA_VERSION,
    EpisodeRecord,
    RecordError,
    Status,
    Termination,
)

__all__ = [
    "SCHEMA_VERSION",
    "EpisodeRecord",
    "RecordError",
    "Status",
    "Termination",
]
