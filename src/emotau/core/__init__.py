"""What every layer shares: errors, the chat types and the model-client interface, the shared
value types, the typed episode record, and the plugin registry.

Only names listed in ``__all__`` are public; the rest lives in the private modules.
"""

from emotau.core._chat import ChatRequest, ChatResponse, ModelClient, ToolCall
from emotau.core._errors import InfraError, UserError
from emotau.core._record import (
    SCHEMA_VERSION,
    EpisodeRecord,
    RecordError,
    Status,
    Termination,
)
from emotau.core._registry import GROUPS, Registry

__all__ = [
    "GROUPS",
    "SCHEMA_VERSION",
    "ChatRequest",
    "ChatResponse",
    "EpisodeRecord",
    "InfraError",
    "ModelClient",
    "RecordError",
    "Registry",
    "Status",
    "Termination",
    "ToolCall",
    "UserError",
]
