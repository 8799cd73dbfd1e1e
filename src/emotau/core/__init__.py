"""What every layer shares: errors, the chat types and the model-client interface, the shared
value types, and the plugin registry."""

from emotau.core._chat import ChatRequest, ChatResponse, ModelClient, ToolCall
from emotau.core._errors import InfraError, UserError
from emotau.core._registry import GROUPS, Registry

__all__ = [
    "GROUPS",
    "ChatRequest",
    "ChatResponse",
    "InfraError",
    "ModelClient",
    "Registry",
    "ToolCall",
    "UserError",
]
