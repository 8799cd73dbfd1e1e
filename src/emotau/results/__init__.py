"""A run's results: the crash-safe shard store, the :class:`Run` reader, the per-variant
summary, the status of a run in progress, and merging shards copied back from elsewhere."""

from emotau.results._collect import CollectResult, collect
from emotau.results._monitor import (
    RunStatus,
    StatusReader,
    render_status,
    run_status,
    status_change,
    status_line,
)
from emotau.results._reader import Run
from emotau.results._store import (
    EPISODES_DIR,
    SPEC_FILE,
    Key,
    RunStore,
    ShardWriter,
    is_finished,
    merge_records,
    parse_line,
    parse_shard_name,
    read_shard,
    record_key,
    repair_shard,
    shard_filename,
)
from emotau.results._summary import (
    UsageTotals,
    format_usd,
    pass_hat_k,
    render_table,
    summarize,
    task_pass_hat_k,
    total_cost,
    usage_totals,
)

__all__ = [
    "EPISODES_DIR",
    "SPEC_FILE",
    "CollectResult",
    "Key",
    "Run",
    "RunStatus",
    "RunStore",
    "ShardWriter",
    "StatusReader",
    "UsageTotals",
    "collect",
    "format_usd",
    "is_finished",
    "merge_records",
    "parse_line",
    "parse_shard_name",
    "pass_hat_k",
    "read_shard",
    "record_key",
    "render_status",
    "render_table",
    "repair_shard",
    "run_status",
    "shard_filename",
    "status_change",
    "status_line",
    "summarize",
    "task_pass_hat_k",
    "total_cost",
    "usage_totals",
]
