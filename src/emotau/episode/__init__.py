"""One episode: the engine, agent and user strategies, variants and the user's prompt."""

from emotau.episode._prompts import UserPrompt, build_user_prompt, prompt_texts

__all__ = ["UserPrompt", "build_user_prompt", "prompt_texts"]
