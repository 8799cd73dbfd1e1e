"""Episodes: the loop, the agent and user strategies it drives (plugins of the
``emotau.agents`` and ``emotau.users`` entry-point groups), and the user's prompt."""

from emotau.episode._agents import (
    AGENT_STRATEGIES,
    ActAgent,
    AgentStrategy,
    AgentTurn,
    ParsedCall,
    ReactAgent,
    ToolCallingAgent,
)
from emotau.episode._prompts import UserPrompt, build_user_prompt, prompt_texts
from emotau.episode._users import (
    USER_STRATEGIES,
    LLMUser,
    ReactUser,
    ReflectionUser,
    UserStrategy,
    UserTurn,
    VerifyUser,
)

__all__ = [
    "AGENT_STRATEGIES",
    "USER_STRATEGIES",
    "ActAgent",
    "AgentStrategy",
    "AgentTurn",
    "LLMUser",
    "ParsedCall",
    "ReactAgent",
    "ReactUser",
    "ReflectionUser",
    "ToolCallingAgent",
    "UserPrompt",
    "UserStrategy",
    "UserTurn",
    "VerifyUser",
    "build_user_prompt",
    "prompt_texts",
]
