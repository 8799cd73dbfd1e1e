"""Model clients: one OpenAI-compatible chat completion per call, for every role.

The provider registry (entry-point group ``emotau.providers``) turns a role's
:class:`ModelConfig` into a client; :class:`EpisodeClient` is one episode's metered view of it.
"""

from emotau.models._config import ModelConfig, RetryConfig
from emotau.models._judge import Judgement, ask_judge, judge_statements
from emotau.models._openai import (
    METADATA_FIELD,
    METADATA_HEADER,
    SYNTHETIC_FINGERPRINT,
    ClientSettings,
    OpenAIClient,
    describe_error,
)
from emotau.models._parsing import recover_tool_calls, split_reasoning
from emotau.models._providers import PROVIDERS, EpisodeClient, create_client, provider_for

__all__ = [
    "METADATA_FIELD",
    "METADATA_HEADER",
    "PROVIDERS",
    "SYNTHETIC_FINGERPRINT",
    "ClientSettings",
    "EpisodeClient",
    "Judgement",
    "ModelConfig",
    "OpenAIClient",
    "RetryConfig",
    "ask_judge",
    "create_client",
    "describe_error",
    "judge_statements",
    "provider_for",
    "recover_tool_calls",
    "split_reasoning",
]
