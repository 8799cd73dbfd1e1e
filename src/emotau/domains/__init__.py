"""Domains: the customer-service worlds an episode runs in, and how they are found by name.

Domains are plugins of the ``emotau.domains`` entry-point group; the built-in ``hotel``,
``tau-bench`` and ``tau2`` are declared in emotau's own ``pyproject.toml`` like any other.
``load_domain(name)`` accepts an entry point's name (``hotel``), a family with its parameter
(``tau-bench:retail:train``, ``tau2:telecom:small``: the ``tau-bench`` plugin is called with
``"retail:train"``), or ``package.module:object`` where the object is a :class:`Domain`
subclass, a factory returning one, or an instance.
"""

from __future__ import annotations

from typing import Any

from emotau.core import Action, Registry, RewardResult, Task, ToolResult, UserError
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
    "folded_domain_names",
    "load_domain",
]

#: entry-point group ``emotau.domains``: a Domain subclass, an instance, or a factory; a family
#: (``tau-bench``) is a factory called with the rest of the name, and may list its names in a
#: ``names`` attribute
DOMAINS: Registry[Any] = Registry("domain")


def _instantiate(obj: object, name: str, param: str | None = None) -> Domain:
    if isinstance(obj, Domain):
        if param is not None:
            raise UserError(f"domain {name!r}: {name.split(':')[0]!r} takes no parameter")
        return obj
    if not callable(obj) or (isinstance(obj, type) and not issubclass(obj, Domain)):
        raise UserError(f"domain {name!r} is not a Domain subclass, instance or factory")
    if param is not None and isinstance(obj, type):
        raise UserError(f"domain {name!r}: {name.split(':')[0]!r} takes no parameter")
    try:
        dom = obj() if param is None else obj(param)
    except UserError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise UserError(
            f"domain {name!r} could not be built: {type(exc).__name__}: {text}"
        ) from None
    if not isinstance(dom, Domain):
        raise UserError(f"domain {name!r} is not a Domain subclass, instance or factory")
    return dom


def available_domains() -> list[str]:
    """Every domain name the installed plugins offer (families expanded where they say how)."""
    out: list[str] = []
    for name in DOMAINS.names():
        try:
            names = getattr(DOMAINS.get(name), "names", None)
        except UserError:
            names = None
        out.extend(names or [name])
    return sorted(out)


def load_domain(name: str) -> Domain:
    """Build a fresh domain instance from a name, a family name or ``module:object``.

    A name that is neither an installed domain nor a family (``taubench:airline``, a module
    that does not import) is refused with the names that are accepted."""
    family = name.partition(":")[0]
    installed = DOMAINS.canonical_or_none(name) or DOMAINS.canonical_or_none(family)
    try:
        found = DOMAINS.resolve(name, allow_refs=True)
    except UserError as exc:
        if installed is not None:
            raise
        raise UserError(_with_accepted(str(exc), name)) from None
    return _instantiate(found.plugin, name, found.param)


def folded_domain_names() -> str:
    """:func:`available_domains` with each family's splits folded, for messages and help:
    ``hotel, tau-bench:airline, tau-bench:retail[:dev|:train], tau2:airline[:test|:train], ...``
    (a split in brackets may be added to the name before it)."""
    folded: dict[str, list[str]] = {}
    for name in available_domains():
        parts = name.split(":")
        folded.setdefault(":".join(parts[:2]), [])
        if len(parts) > 2:
            folded[":".join(parts[:2])].append(":" + ":".join(parts[2:]))
    order = sorted(folded, key=lambda b: (b != "hotel", b))
    return ", ".join(b + (f"[{'|'.join(folded[b])}]" if folded[b] else "") for b in order)


def _with_accepted(message: str, name: str) -> str:
    """``message`` about ``name`` with the domain names that are accepted (and the family it
    looks like a misspelling of: ``taubench:airline`` is ``tau-bench:airline``)."""
    try:
        accepted = f"{folded_domain_names()}, or package.module:object"
    except UserError:  # a broken plugin: the message as it was
        return message
    family, sep, rest = name.partition(":")

    def squash(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "")

    like = next((f for f in DOMAINS.names() if squash(f) == squash(family)), None)
    if like is not None:
        return f"unknown domain {name!r} (did you mean {like + sep + rest!r}?); allowed: {accepted}"
    unknown = f"unknown domain {name!r}"
    if message.startswith(unknown):
        return f"{unknown}; allowed: {accepted}"
    return f"{message}; the domains: {accepted}"
