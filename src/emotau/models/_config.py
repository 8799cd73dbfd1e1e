"""One role's model endpoint and the retry policy of model calls."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

#: provider options that change only timing, never what a model says (kept out of the hash)
TIMING_OPTIONS = frozenset({"latency"})


class ModelConfig(BaseModel):
    """One role's model endpoint. ``model = "scripted"`` is the offline built-in model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = "scripted"
    provider: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    timeout: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    #: requests in flight to this endpoint at most (protects a small server); None = no limit
    max_concurrency: int | None = Field(default=None, gt=0)
    #: US dollars per million tokens, e.g. {input = 0.15, output = 0.6}; enables cost records
    price: dict[str, float] | None = None
    #: provider-specific options, e.g. the scripted agent's ``skill``
    options: dict[str, Any] = Field(default_factory=dict)
    #: send the episode's metadata (task, variant, emotions...) in the ``X-Emotau-Metadata``
    #: header: None (auto) sends it only to an endpoint whose ``/models`` asks for it (emotau's
    #: mock server), so a real model never learns the experimental condition
    send_metadata: bool | None = None

    @field_validator("price")
    @classmethod
    def _check_price(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (
            set(v) != {"input", "output"}
            or not all(math.isfinite(x) and x >= 0 for x in v.values())
        ):
            raise ValueError("needs exactly input and output, in USD per million tokens, >= 0")
        return v

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parts = urlsplit(v)
            port = parts.port  # raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"{v!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} must look like http://host:port/v1")
        del port
        return v

    @field_validator("extra_body")
    @classmethod
    def _check_extra_body(cls, v: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(v) & {"model", "messages", "tools", "tool_choice"})
        if reserved:
            raise ValueError(f"{reserved[0]!r} is set by emotau and cannot be overridden")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be plain JSON values ({exc})") from None
        return v

    def identity(self) -> dict[str, Any]:
        """Fields that change what the model says (not where, how fast or at what price)."""
        out = self.model_dump(
            exclude={
                "base_url",
                "api_key_env",
                "timeout",
                "max_concurrency",
                "price",
                "send_metadata",
            }
        )
        out["options"] = {k: v for k, v in self.options.items() if k not in TIMING_OPTIONS}
        return out


class RetryConfig(BaseModel):
    """Retries of failed model calls: exponential backoff with full jitter.

    A call is retried on connection errors, timeouts, HTTP 429 and 5xx, and empty completions,
    up to ``max_attempts`` times; all retries of one episode share ``episode_budget``. When
    either runs out, the episode is an infrastructure error (never scored, retried on resume).
    When ``stop_after_failed_episodes`` episodes in a row end that way, the circuit breaker
    opens: no episode starts while the endpoints are probed with backoff for up to
    ``breaker_wait`` seconds; the run carries on when they answer, else it stops, the grid left
    for a resume, not burnt.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    max_attempts: int = Field(default=6, gt=0, le=100)
    episode_budget: int = Field(default=20, ge=0, le=10_000)
    base_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=30.0, ge=0)
    #: stop starting episodes after this many in a row ended as infrastructure errors (an
    #: endpoint that is down): None = twice the run's max_concurrency, at least 20; 0 = never
    stop_after_failed_episodes: int | None = Field(default=None, ge=0)
    #: seconds the open breaker probes the endpoints (backoff from 1 s to 60 s) before the run
    #: gives up; 0 = give up at once
    breaker_wait: float = Field(default=300.0, ge=0, le=7 * 86_400)
