"""Domain registry and loader.

``load_domain(name)`` accepts a registered name (``hotel``), an installed entry point of the
``emotau.domains`` group, or ``package.module:object`` where the object is a :class:`Domain`
subclass, a factory returning one, or an instance.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from emotau.core._errors import UserError
from emotau.core._registry import Registry
from emotau.core._types import Action, RewardResult, Task, ToolResult
from emotau.domains._base import Database, Domain, Environment, EpisodeOutcome

__all__ = [
    "DOMAINS",
    "Action",
    "Database",
    "Domain",
    "Environment",
    "EpisodeOutcome",
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


def _taubench(env_name: str, split: str = "test") -> Callable[[], Domain]:
    def make() -> Domain:
        from emotau.domains.taubench import TauBenchDomain

        return TauBenchDomain(env_name, split)

    return make


DOMAINS.add("tau-bench:retail", _taubench("retail"))
DOMAINS.add("tau-bench:retail:train", _taubench("retail", "train"))
DOMAINS.add("tau-bench:retail:dev", _taubench("retail", "dev"))
DOMAINS.add("tau-bench:airline", _taubench("airline"))


def _tau2(name: str, split: str | None = None) -> Callable[[], Domain]:
    def make() -> Domain:
        from emotau.domains.tau2 import Tau2Domain

        return Tau2Domain(name, split)

    return make


DOMAINS.add("tau2:mock", _tau2("mock"))
DOMAINS.add("tau2:airline", _tau2("airline"))
DOMAINS.add("tau2:retail", _tau2("retail"))
DOMAINS.add("tau2:telecom", _tau2("telecom"))
for _name, _split in [
    ("airline", "train"),
    ("airline", "test"),
    ("retail", "train"),
    ("retail", "test"),
    ("telecom", "train"),
    ("telecom", "test"),
    ("telecom", "small"),
    ("telecom", "full"),
]:
    DOMAINS.add(f"tau2:{_name}:{_split}", _tau2(_name, _split))


def _instantiate(obj: object, name: str) -> Domain:
    if isinstance(obj, Domain):
        return obj
    if not callable(obj) or (isinstance(obj, type) and not issubclass(obj, Domain)):
        raise UserError(f"domain {name!r} is not a Domain subclass, instance or factory")
    try:
        dom = obj()
    except Exception as exc:
        raise UserError(
            f"domain {name!r} could not be built: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(dom, Domain):
        raise UserError(f"domain {name!r} is not a Domain subclass, instance or factory")
    return dom


def available_domains() -> list[str]:
    eps = [ep.name for ep in entry_points(group="emotau.domains")]
    return sorted(set(DOMAINS.names()) | set(eps))


def load_domain(name: str) -> Domain:
    """Build a fresh domain instance from a name, an entry point or ``module:object``."""
    if name in DOMAINS:
        return DOMAINS.get(name)()
    for ep in entry_points(group="emotau.domains"):
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as exc:
                raise UserError(f"cannot load domain entry point {name!r}: {exc}") from None
            return _instantiate(obj, name)
    if name.startswith("tau2:"):  # any other domain or split the installed tau2 has
        _, upstream, *rest = name.split(":")
        if len(rest) > 1 or not upstream:
            raise UserError(f"domain {name!r}: expected tau2:<domain>[:<split>]")
        return _tau2(upstream, rest[0] if rest else None)()
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        if not mod_name or not attr or mod_name.startswith("."):
            raise UserError(f"domain {name!r}: expected package.module:object")
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:
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
