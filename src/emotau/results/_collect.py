"""Merge shard files copied back from other machines into one run (``emotau collect``).

Each source is a copy of the run directory (its ``spec.json`` and ``episodes/``), or its
``episodes/`` folder inside such a copy: the spec hash must equal the target's, so shards of
a different experiment can never be mixed in. Every record whose key has no finished record
in the target yet is appended to the target's shard file of the same name, with the target's
own writer (a lock, whole lines, fsync); an infrastructure-error record is kept only for a key
the target knows nothing about. Running it twice adds nothing the second time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emotau.core import UserError
from emotau.results._store import (
    EPISODES_DIR,
    RunStore,
    ShardWriter,
    is_finished,
    read_shard,
    record_key,
)


@dataclass
class CollectResult:
    added: int = 0  # finished records appended
    added_infra: int = 0  # infrastructure-error records appended (keys with no other record)
    skipped: int = 0  # records whose key the target (or an earlier source) already had
    files: Counter[str] = field(default_factory=Counter)  # target shard file -> lines added


def _source_run(path: Path) -> RunStore:
    if not path.is_dir():
        raise UserError(f"--from {str(path)!r} is not a directory")
    if path.name == EPISODES_DIR and (path.parent / "spec.json").is_file():
        path = path.parent
    store = RunStore(path)
    if store.read_frozen() is None:
        raise UserError(
            f"--from {str(path)!r} has no spec.json: copy the whole run directory back (its "
            "spec.json is how collect checks that the shards ran the same experiment)"
        )
    return store


def collect(target: str | Path, sources: Sequence[str | Path]) -> CollectResult:
    """Append the sources' records that the target lacks; see the module docs."""
    from emotau.results._reader import Run

    if not sources:
        raise UserError("collect needs at least one --from DIR")
    run = Run.open(target)
    stores = [_source_run(Path(s)) for s in sources]
    for store in stores:
        if store.path.resolve() == run.path.resolve():
            raise UserError(f"--from {str(store.path)!r} is the target run itself")
        frozen = store.read_frozen()
        assert frozen is not None
        if frozen["hash"] != run.frozen["hash"]:
            from emotau.spec import diff_identity

            diffs = diff_identity(run.frozen["identity"], frozen["identity"])
            raise UserError(
                f"{str(store.path)!r} ran a different spec than {str(run.path)!r} "
                f"({'; '.join(diffs) or 'hash differs'}): not merged"
            )
    known: dict[tuple[int, str, int], bool] = {}  # key -> has a finished record
    for r in run.store.iter_records(light=True):
        key = record_key(r)
        known[key] = known.get(key, False) or is_finished(r)
    result = CollectResult()
    writers: dict[str, ShardWriter] = {}
    try:
        for store in stores:
            for f in store.shard_files():
                for rec in read_shard(f):
                    key = record_key(rec)
                    done = known.get(key)
                    finished = is_finished(rec)
                    if done or (done is not None and not finished):
                        result.skipped += 1
                        continue
                    if f.name not in writers:
                        run.store.episodes_dir.mkdir(exist_ok=True)
                        writers[f.name] = ShardWriter(run.store.episodes_dir / f.name)
                    writers[f.name].append(rec)
                    known[key] = finished
                    result.files[f.name] += 1
                    if finished:
                        result.added += 1
                    else:
                        result.added_infra += 1
    finally:
        for w in writers.values():
            w.sync()
            w.close()
    return result
