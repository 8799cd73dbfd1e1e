"""Model clients: one OpenAI-compatible chat completion per call, for every role.

The provider registry (entry-point group ``emotau.providers``) turns a role's
:class:`ModelConfig` into a client; :class:`EpisodeClient` is one episode's metered view of it.
"""

from emotau.models._config import ModelConfig, RetryConfig
from emotau.models._judge import Judgement, judge_statements
from emotau.models._providers import PROVIDERS, EpisodeClient, create_client, provider_for

__all__ = [
    "PROVIDERS",
    "EpisodeClient",
    "Judgement",
    "ModelConfig",
    "RetryConfig",
    "create_client",
    "judge_statements",
    "provider_for",
]
