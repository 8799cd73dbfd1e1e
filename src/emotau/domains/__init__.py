"""Domain registry and loader.

``load_domain(name)`` accepts a registered name (``hotel``), an installed entry point of the
``emotau.domains`` group, or ``package.module:object`` where the object is a :class:`Domain`
subclass, a factory returning one, or an instance.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from emotau.domains.base import (
    Action,
    Database,
    Domain,
    Environment,
    RewardResult,
    Task,
    ToolResult,
)
from emotau.errors import UserError
from emotau.registry import Registry

__all__ = [
    "DOMAINS",
    "Action",
    "Database",
    "Domain",
    "Environment",
    "RewardResult",
    "Task",
    "ToolResult",
    "available_domains",
    "load_domain",
]

DOMAINS: Registry[Callable[[], Domain]] = Registry("domain")


def _hotel() -> Domain:
    from emotau.domains.hotel import HotelDomain

    return HotelDomain()


DOMAINS.add("hotel", _hotel)


def _instantiate(obj: object, name: str) -> Domain:
    if isinstance(obj, type) and issubclass(obj, Domain):
        return obj()
    if isinstance(obj, Domain):
        return obj
    if callable(obj):
        dom = obj()
        if isinstance(dom, Domain):
            return dom
    raise UserError(f"domain {name!r} is not a Domain subclass, instance or factory")


def available_domains() -> list[str]:
    eps = [ep.name for ep in entry_points(group="emotau.domains")]
    return sorted(set(DOMAINS.names()) | set(eps))


def load_domain(name: str) -> Domain:
    """Build a fresh domain instance from a name, an entry point or ``module:object``."""
    if name in DOMAINS:
        return DOMAINS.get(name)()
    for ep in entry_points(group="emotau.domains"):
        if ep.name == name:
            return _instantiate(ep.load(), name)
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise UserError(f"cannot import domain module {mod_name!r}: {exc}") from None
        try:
            obj = getattr(module, attr)
        except AttributeError:
            raise UserError(f"module {mod_name!r} has no attribute {attr!r}") from None
        return _instantiate(obj, name)
    raise UserError(
        f"unknown domain {name!r}; allowed: {', '.join(available_domains())} "
        "or package.module:object"
    )
