"""Episodes: the loop, the agent and user strategies it drives (plugins of the
``emotau.agents`` and ``emotau.users`` entry-point groups), and the user's prompt."""

from emotau.episode._agents import (
    AGENT_STRATEGIES,
    RESPOND,
    ActAgent,
    AgentStrategy,
    AgentTurn,
    ParsedCall,
    ReactAgent,
    ToolCallingAgent,
    format_text_action,
    parse_text_action,
)
from emotau.episode._engine import EpisodeSetup, run_episode
from emotau.episode._fewshot import FewShotAgent, read_displays
from emotau.episode._prompts import UserPrompt, build_user_prompt, prompt_texts
from emotau.episode._users import (
    STOP_GAVE_UP,
    STOP_GOAL_MET,
    USER_STRATEGIES,
    LLMUser,
    ReactUser,
    ReflectionUser,
    UserStrategy,
    UserTurn,
    VerifyUser,
)
from emotau.episode._variants import INTENSITIES, VariantLibrary, VariantSelection

__all__ = [
    "AGENT_STRATEGIES",
    "INTENSITIES",
    "RESPOND",
    "STOP_GAVE_UP",
    "STOP_GOAL_MET",
    "USER_STRATEGIES",
    "ActAgent",
    "AgentStrategy",
    "AgentTurn",
    "EpisodeSetup",
    "FewShotAgent",
    "LLMUser",
    "ParsedCall",
    "ReactAgent",
    "ReactUser",
    "ReflectionUser",
    "ToolCallingAgent",
    "UserPrompt",
    "UserStrategy",
    "UserTurn",
    "VariantLibrary",
    "VariantSelection",
    "VerifyUser",
    "build_user_prompt",
    "format_text_action",
    "parse_text_action",
    "prompt_texts",
    "read_displays",
    "run_episode",
]
