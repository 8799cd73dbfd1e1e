"""Reading a run directory: its frozen spec and its merged episodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotau.core import EpisodeRecord, UserError
from emotau.results._store import (
    RunStore,
    merge_records,
)
from emotau.results._summary import UsageTotals, summarize
from emotau.spec import (
    RunSpec,
)


# --------------------------------------------------------------------------- the run object
@dataclass
class Run:
    """A run directory: its frozen spec and its episodes (finished or still running)."""

    path: Path
    frozen: dict[str, Any] = field(repr=False)
    stats: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        store = RunStore(path)
        if not store.path.is_dir():
            raise UserError(f"{str(path)!r} is not a directory")
        frozen = store.read_frozen()
        if frozen is None:
            raise UserError(f"{str(path)!r} is not an emotau run (no spec.json)")
        return cls(store.path, frozen)

    @property
    def store(self) -> RunStore:
        return RunStore(self.path)

    @property
    def spec(self) -> RunSpec:
        return RunSpec.model_validate(self.frozen["spec"])

    @property
    def variants(self) -> list[str]:
        return list(self.frozen.get("variant_order") or self.frozen["identity"]["variants"])

    def episodes(self, light: bool = False) -> list[dict[str, Any]]:
        """One record per (task, variant, trial), duplicates across shards dropped."""
        return list(self.store.merged(light=light).values())

    def records(self) -> Iterator[EpisodeRecord]:
        """The full records of :meth:`episodes`, typed, streamed in file order (memory: one
        record at a time); :class:`emotau.core.RecordError` for a record it cannot read."""
        for rec in self.store.iter_merged(light=False):
            yield EpisodeRecord.from_dict(rec)

    def summary(self) -> dict[str, Any]:
        ident = self.frozen["identity"]
        usage = UsageTotals()  # over every line: what the run spent, retried attempts too
        merged = merge_records(usage.count(self.store.iter_records(light=True)))
        out = summarize(
            merged, self.variants, ident["task_ids"], ident["num_trials"], usage.as_dict()
        )
        out["run"] = str(self.path)
        out["spec_hash"] = self.frozen["hash"]
        out["domain"] = ident["domain"]
        return out

    def to_pandas(self) -> Any:
        """The light episode table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise UserError("to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.episodes(light=True))
