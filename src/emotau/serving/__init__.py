"""Model servers for emotau runs: vLLM with the tool-calling flags each model family needs.

:class:`VLLMServer` starts, checks and stops one ``vllm serve`` process (``emotau serve`` and
the jobs of ``emotau submit --serve-agent/--serve-user`` use it); :func:`resolve_tool_flags`
and :data:`FAMILIES` say which flags a model gets. See docs/serve.md. Standard library only.
"""

from emotau.serving._families import (
    BUILTIN_PARSERS,
    FAMILIES,
    PARSERS_VLLM_VERSION,
    REASONING_PARSERS,
    TOOL_CALL_PARSERS,
    Family,
    ParserNames,
    ToolFlags,
    family_table_markdown,
    find_family,
    installed_parsers,
    resolve_tool_flags,
    vllm_python,
)
from emotau.serving._process import (
    DEFAULT_CPU_KV_CACHE_GIB,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_VLLM_COMMAND,
    DEVICES,
    ServeError,
    VLLMServer,
    detect_device,
    port_in_use,
)

__all__ = [
    "BUILTIN_PARSERS",
    "DEFAULT_CPU_KV_CACHE_GIB",
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_VLLM_COMMAND",
    "DEVICES",
    "FAMILIES",
    "PARSERS_VLLM_VERSION",
    "REASONING_PARSERS",
    "TOOL_CALL_PARSERS",
    "Family",
    "ParserNames",
    "ServeError",
    "ToolFlags",
    "VLLMServer",
    "detect_device",
    "family_table_markdown",
    "find_family",
    "installed_parsers",
    "port_in_use",
    "resolve_tool_flags",
    "vllm_python",
]
