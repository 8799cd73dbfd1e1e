"""What every layer shares: errors, the chat types and the model-client interface, the shared
value types, the typed episode record, and the plugin registry.

Only names listed in ``__all__`` are public; the rest lives in the private modules.
"""

from emotau.core._chat import ChatRequest, ChatResponse, ModelClient, RetryBudget, ToolCall
from emotau.core._errors import (
    EXIT_ENDPOINT_DOWN,
    EXIT_FILE_ERROR,
    EXIT_INCOMPLETE,
    EmptyReplyError,
    InfraError,
    SpecChangedError,
    UserError,
    UserSimulatorError,
)
from emotau.core._hooks import EpisodeContext, EpisodeHooks, Hook, HookSet, RunContext, load_hook
from emotau.core._record import (
    FIELDS,
    KEY_FIELDS,
    LIGHT_FIELDS,
    SCHEMA_VERSION,
    EpisodeRecord,
    Key,
    RecordError,
    Status,
    Termination,
    is_finished,
    record_key,
)
from emotau.core._registry import GROUPS, Registry, a_callable, subclass_of
from emotau.core._types import Action, RewardResult, Task, ToolResult
from emotau.core._version import __version__

__all__ = [
    "EXIT_ENDPOINT_DOWN",
    "EXIT_FILE_ERROR",
    "EXIT_INCOMPLETE",
    "FIELDS",
    "GROUPS",
    "KEY_FIELDS",
    "LIGHT_FIELDS",
    "SCHEMA_VERSION",
    "Action",
    "ChatRequest",
    "ChatResponse",
    "EmptyReplyError",
    "EpisodeContext",
    "EpisodeHooks",
    "EpisodeRecord",
    "Hook",
    "HookSet",
    "InfraError",
    "Key",
    "ModelClient",
    "RecordError",
    "Registry",
    "RetryBudget",
    "RewardResult",
    "RunContext",
    "SpecChangedError",
    "Status",
    "Task",
    "Termination",
    "ToolCall",
    "ToolResult",
    "UserError",
    "UserSimulatorError",
    "__version__",
    "a_callable",
    "is_finished",
    "load_hook",
    "record_key",
    "subclass_of",
]
