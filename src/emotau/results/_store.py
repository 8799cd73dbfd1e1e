"""The run directory: a frozen spec plus append-only JSON Lines shard files.

Layout::

    runs/<experiment>/
        spec.json                         frozen spec, its identity and hash (written once)
        episodes/shard-00000-of-00001.jsonl   one finished episode per line

Each process writes only its own shard file, so any number of processes (or machines sharing a
file system) can write to one run without coordinating; an advisory lock on the shard file
only stops two processes from running the *same* shard at once. Each line is flushed as its
episode finishes; the file is fsync'd at least once a second while dirty. A crash
can therefore leave at most one truncated last line, which the next writer of that shard cuts
off before appending. Readers ignore an unterminated last line (another process may be writing
it) and merge all shards, dropping duplicate (task, variant, trial) keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emotau.core import (  # defined with the record; readers may import them from here
    FIELDS,
    LIGHT_FIELDS,
    Key,
    Status,
    UserError,
    is_finished,
    record_key,
)

SPEC_FILE = "spec.json"
TMP_PREFIX = ".spec."
EPISODES_DIR = "episodes"
_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)\.jsonl$")


def shard_filename(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.jsonl"


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.spec_path = self.path / SPEC_FILE
        self.episodes_dir = self.path / EPISODES_DIR

    # ------------------------------------------------------------------ spec
    def read_frozen(self) -> dict[str, Any] | None:
        try:
            raw = self.spec_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"cannot read {str(self.spec_path)!r}: {exc.strerror}") from None
        try:
            frozen = json.loads(raw)
        except ValueError:
            raise UserError(f"{str(self.spec_path)!r} is corrupt (not JSON)") from None
        ident = frozen.get("identity") if isinstance(frozen, dict) else None
        if (
            not isinstance(frozen, dict)
            or not isinstance(frozen.get("hash"), str)
            or not isinstance(ident, dict)
            or not isinstance(ident.get("task_ids"), list)
            or not isinstance(ident.get("variants"), dict)
            or not isinstance(ident.get("num_trials"), int)
        ):
            raise UserError(f"{str(self.spec_path)!r} is not a valid emotau spec file")
        return frozen

    def create(self, frozen: dict[str, Any]) -> dict[str, Any]:
        """Write the frozen spec unless one exists; return the one now on disk.

        Uses a hard link so that of several processes racing to create the run, exactly one
        spec wins and the others read it (safe on NFS, where ``O_EXCL`` may not be).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f"{TMP_PREFIX}{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(frozen, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self.spec_path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        existing = self.read_frozen()
        assert existing is not None
        # only after spec.json exists, so a directory with episodes always has a spec
        self.episodes_dir.mkdir(exist_ok=True)
        return existing

    def leftovers_only(self) -> bool:
        """True if the directory holds nothing but what a creation cut short leaves behind."""
        for entry in self.path.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                continue
            if entry.name == EPISODES_DIR and entry.is_dir() and not self.shard_files():
                continue
            return False
        return True

    # ------------------------------------------------------------------ reading
    def shard_files(self) -> list[Path]:
        if not self.episodes_dir.is_dir():
            return []
        return sorted(p for p in self.episodes_dir.iterdir() if _SHARD_RE.match(p.name))

    def iter_records(self, light: bool = False) -> Iterator[dict[str, Any]]:
        """Every complete line of every shard file, in file order (duplicates included)."""
        for path in self.shard_files():
            yield from read_shard(path, light)

    def merged(self, light: bool = True) -> dict[Key, dict[str, Any]]:
        """One record per key: the first finished one, else the latest infrastructure error."""
        return merge_records(self.iter_records(light))

    def iter_merged(self, light: bool = False) -> Iterator[dict[str, Any]]:
        """The records of :meth:`merged`, streamed in file order.

        A first pass reads only each line's key and status (from the prefix emotau writes,
        else by parsing the line) and picks, per key, the first finished record, else the
        latest; a second pass parses and yields the chosen lines. Memory: the keys only.
        """
        chosen: dict[Key, tuple[tuple[str, int], bool]] = {}
        for pos, key, status in self._line_keys():
            old = chosen.get(key)
            if old is None or not old[1]:
                chosen[key] = (pos, status == _COMPLETED)
        wanted = {pos: key for key, (pos, _) in chosen.items()}
        chosen.clear()
        lost: set[Key] = set()  # chosen by their prefix, but the rest of the line is damaged
        for path in self.shard_files():
            for i, raw in enumerate(_complete_lines(path)):
                if (key := wanted.get((path.name, i))) is not None:
                    rec = parse_line(raw)
                    if rec is None:
                        lost.add(key)
                    else:
                        yield {k: rec.get(k) for k in LIGHT_FIELDS} if light else rec
        if lost:  # rare: the merge rule over the lines that do parse, for those keys only
            again = (r for r in self.iter_records(light) if record_key(r) in lost)
            yield from merge_records(again).values()

    def _line_keys(self) -> Iterator[tuple[tuple[str, int], Key, str | None]]:
        for path in self.shard_files():
            for i, raw in enumerate(_complete_lines(path)):
                m = _PREFIX_RE.match(raw)
                if m is not None and raw.endswith(b"}\n") and (label := _utf8(m[2])):
                    yield (path.name, i), (int(m[1]), label, int(m[3])), m[4].decode("ascii")
                elif (rec := parse_line(raw)) is not None:
                    yield (path.name, i), record_key(rec), rec.get("status")

    def finished_keys(self) -> set[Key]:
        keys: set[Key] = set()
        for path in self.shard_files():
            for rec in read_shard(path, light=True):
                if is_finished(rec):
                    keys.add(record_key(rec))
        return keys

    def finished_outcomes(self) -> dict[Key, tuple[bool, bool]]:
        """``(scored, success)`` of each finished key's record, the one the summary counts
        (the first finished line of the key)."""
        out: dict[Key, tuple[bool, bool]] = {}
        for path in self.shard_files():
            for rec in read_shard(path, light=True):
                if is_finished(rec):
                    out.setdefault(
                        record_key(rec), (bool(rec.get("scored")), bool(rec.get("success")))
                    )
        return out


def merge_records(records: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for rec in records:
        key = record_key(rec)
        old = out.get(key)
        if old is None or (not is_finished(old)):
            out[key] = rec
    return out


_COMPLETED = Status.COMPLETED.value
# the start of every line ShardWriter writes (json.dumps of EpisodeRecord.to_dict(), compact
# separators): {"task_id":..,"variant":"..","trial":..,"status":"..", the record's first fields
_PREFIX_RE = re.compile(
    rb'\{"%s":(-?\d+),"%s":"([^"\\]*)","%s":(\d+),"%s":"(\w+)"'
    % tuple(name.encode("ascii") for name in FIELDS[:4])
)


def _utf8(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _complete_lines(path: Path) -> Iterator[bytes]:
    """Every newline-terminated line; stops at a partial last line (being written, or cut)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            yield raw


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """``(index, count)`` of a shard file's name (``shard-I-of-N.jsonl``), else None."""
    m = _SHARD_RE.match(name)
    return (int(m[1]), int(m[2])) if m else None


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The record on one line of a shard file, or None for a line damaged outside emotau
    (exactly the lines every reader accepts)."""
    try:
        rec = json.loads(raw.decode("utf-8"))
        record_key(rec)
    except (ValueError, TypeError, KeyError, AttributeError):  # UnicodeDecodeError included
        return None
    return rec


def read_shard(path: Path, light: bool = False) -> Iterator[dict[str, Any]]:
    for raw in _complete_lines(path):
        rec = parse_line(raw)
        if rec is None:
            continue  # only possible for a line damaged outside emotau
        yield {k: rec.get(k) for k in LIGHT_FIELDS} if light else rec


def repair_shard(path: Path) -> int:
    """Cut an unterminated or unparsable last line; return the number of bytes removed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "r+b") as fh:
        # find the start of the last line by reading backwards in blocks
        end = size
        fh.seek(size - 1)
        keep = size
        if fh.read(1) != b"\n":
            keep = _last_newline(fh, size) + 1
            end = keep
        # the last complete line must parse (a torn write can leave garbage ending in \n)
        if end > 0:
            start = _last_newline(fh, end - 1) + 1
            fh.seek(start)
            line = fh.read(end - start)
            try:
                record_key(json.loads(line.decode("utf-8")))
            except (ValueError, TypeError, KeyError):
                keep = start
        if keep < size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return size - keep


def _last_newline(fh: Any, before: int) -> int:
    """Offset of the last b'\\n' strictly before ``before`` (-1 if none)."""
    pos = before
    block = 65536
    while pos > 0:
        start = max(0, pos - block)
        fh.seek(start)
        chunk = fh.read(pos - start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            return start + idx
        pos = start
    return -1


class ShardWriter:
    """Appends episode records to one shard file; flush per line, fsync at least every second."""

    def __init__(self, path: Path, fsync_interval: float = 1.0) -> None:
        self.path = path
        self._fh = open(path, "ab")  # noqa: SIM115 - closed in close()
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise UserError(
                f"{str(path)!r} is being written by another emotau process; "
                "run a different --shard, or wait for it to finish"
            ) from None
        except OSError:
            pass  # a file system without locks: one writer per shard is then up to the user
        self.repaired_bytes = repair_shard(path)
        self._interval = fsync_interval
        self._dirty = False
        self._last_sync = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        self._dirty = True
        if time.monotonic() - self._last_sync >= self._interval:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sync()

    def start(self) -> None:
        """Start the once-a-second fsync timer (needs a running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._periodic())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(ValueError):
            self.sync()
        self._fh.close()
