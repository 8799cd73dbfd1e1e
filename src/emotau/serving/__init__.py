"""Model servers for emotau runs: vLLM with the tool-calling flags each model family needs.

:class:`VLLMServer` starts, checks and stops one ``vllm serve`` process (``emotau serve`` and
the jobs of ``emotau submit --serve-agent/--serve-user`` use it); :func:`resolve_tool_flags`
and :data:`FAMILIES` say which flags a model gets. See docs/serve.md. Standard library only.
"""

from emotau.serving._families import (
    FAMILIES,
    REASONING_PARSERS,
    TOOL_CALL_PARSERS,
    Family,
    ToolFlags,
    family_table_markdown,
    find_family,
    resolve_tool_flags,
)
from emotau.serving._process import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_VLLM_COMMAND,
    ServeError,
    VLLMServer,
    port_in_use,
)

__all__ = [
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_VLLM_COMMAND",
    "FAMILIES",
    "REASONING_PARSERS",
    "TOOL_CALL_PARSERS",
    "Family",
    "ServeError",
    "ToolFlags",
    "VLLMServer",
    "family_table_markdown",
    "find_family",
    "port_in_use",
    "resolve_tool_flags",
]
