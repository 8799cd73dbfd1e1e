"""One registry type for every pluggable concept, filled from entry points only.

Each kind of plugin has an entry-point group ``emotau.<kind>`` (``emotau.domains``,
``emotau.agents``, ...). emotau's own built-ins are declared in its ``pyproject.toml`` like any
third-party plugin, so a plugin installed in the environment is visible in every process that
runs part of a grid: ``--workers`` processes, Slurm and Ray jobs. Nothing is registered at run
time, so there is no process-local state to lose.

A name resolves in this order:

1. an entry point of the group with exactly that name (``hotel``, ``tool-calling``);
2. ``family:rest`` where ``family`` is an entry point: the plugin is the entry point's object
   and ``rest`` its parameter (``tau-bench:retail:train`` -> ``tau-bench`` with
   ``retail:train``);
3. with ``allow_refs``, ``package.module:object``: the module is imported and the object taken.

An alias (``tool_calling`` for ``tool-calling``) stands for its entry point in 1 and 2. Entry
points are read once per registry and each plugin is loaded on first use; when two
distributions declare the same name, the first on ``sys.path`` wins, as for imports. Every
failure is a one-line :class:`UserError`: an unknown name lists the installed ones, a plugin
that cannot be imported or is of the wrong type names its entry point.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from emotau.core._errors import UserError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")

#: ``package.module``: dotted Python identifiers (what ``module:object`` refs may name)
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

#: every kind of plugin and its entry-point group
GROUPS: Mapping[str, str] = {
    "domain": "emotau.domains",
    "agent strategy": "emotau.agents",
    "user strategy": "emotau.users",
    "model provider": "emotau.providers",
    "scheduler": "emotau.schedulers",
    "emotion labeller": "emotau.labellers",
    "hook": "emotau.hooks",
    "activation backend": "emotau.activations",
}


@dataclass(frozen=True)
class Resolved(Generic[T]):
    """A resolved plugin name: the plugin, the name it was found under, and its parameter."""

    plugin: T
    name: str
    param: str | None = None


class Registry(Generic[T]):
    """The plugins of one kind.

    ``check(obj, name)`` validates (and may convert) a loaded object; it raises
    :class:`UserError` for an object of the wrong type, which the registry prefixes with the
    kind, the name and where the object came from. ``aliases`` maps other spellings to entry
    point names.
    """

    def __init__(
        self,
        kind: str,
        *,
        check: Callable[[Any, str], T] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if kind not in GROUPS:
            raise ValueError(f"unknown plugin kind {kind!r}")
        self.kind = kind
        self.group = GROUPS[kind]
        self._check = check
        self._aliases = dict(aliases or {})
        self._loaded: dict[str, T] = {}  # a cache of imports, never a source of plugins

    @cached_property
    def _entry_points(self) -> dict[str, EntryPoint]:
        from importlib.metadata import entry_points  # ~30 ms: only when a plugin is needed

        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            found.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as imports do
        return found

    def names(self) -> list[str]:
        """The registered names (entry points of the group), sorted."""
        return sorted(self._entry_points)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical_or_none(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def canonical_or_none(self, name: str) -> str | None:
        """The entry point's name for ``name`` or an alias of it; None if neither."""
        name = self._aliases.get(name, name)
        return name if name in self._entry_points else None

    def source(self, name: str) -> str:
        """Where a registered name comes from: ``module:object (distribution)``."""
        ep = self._entry_points[self.canonical(name)]
        dist = getattr(ep, "dist", None)
        return f"{ep.value} ({dist.name})" if dist is not None else ep.value

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (an alias is resolved); UserError if unknown."""
        found = self.canonical_or_none(name)
        if found is None:
            raise UserError(self._unknown(name))
        return found

    def get(self, name: str) -> T:
        """The plugin registered as ``name`` (exactly, or through an alias)."""
        return self._load(self.canonical(name))

    def resolve(self, name: str, *, allow_refs: bool = False) -> Resolved[T]:
        """``name``, ``family:param`` or (with ``allow_refs``) ``package.module:object``."""
        exact = self.canonical_or_none(name)
        if exact is not None:
            return Resolved(self._load(exact), exact)
        family, sep, param = name.partition(":")
        canonical_family = self.canonical_or_none(family) if sep else None
        if canonical_family is not None:
            return Resolved(self._load(canonical_family), canonical_family, param)
        if sep and allow_refs and (_MODULE_RE.fullmatch(family) or not family or family[0] == "."):
            return Resolved(self._import(name), name)  # a typo'd family name is "unknown"
        raise UserError(self._unknown(name, allow_refs))

    def _unknown(self, name: str, allow_refs: bool = False) -> str:
        allowed = ", ".join(self.names()) or "none installed"
        refs = " or package.module:object" if allow_refs else ""
        return f"unknown {self.kind} {name!r}; allowed: {allowed}{refs}"

    def _load(self, name: str) -> T:
        if name not in self._loaded:
            ep = self._entry_points[name]
            try:
                obj = ep.load()
            except Exception as exc:
                raise UserError(
                    f"cannot load {self.kind} {name!r} ({self.source(name)}): {_one_line(exc)}"
                ) from None
            self._loaded[name] = self._checked(obj, name, self.source(name))
        return self._loaded[name]

    def _import(self, ref: str) -> T:
        mod_name, _, attr = ref.partition(":")
        if not mod_name or not attr or mod_name.startswith("."):
            raise UserError(f"{self.kind} {ref!r}: expected package.module:object")
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise UserError(f"cannot import {self.kind} module {mod_name!r}: {text}") from None
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise UserError(f"module {mod_name!r} has no attribute {attr!r}") from None
        return self._checked(obj, ref, ref)

    def _checked(self, obj: Any, name: str, where: str) -> T:
        if self._check is None:
            return obj
        try:
            return self._check(obj, name)
        except UserError as exc:
            raise UserError(f"{self.kind} {name!r} ({where}): {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(obj: Any) -> str:
    """``the class Foo``, ``the function make``, ``the int 42``."""
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    label = getattr(obj, "__qualname__", None) or repr(obj)
    return f"the {type(obj).__name__} {label[:60]}"


def subclass_of(base: type, *, named: bool = False) -> Callable[[Any, str], Any]:
    """A ``check`` for registries whose plugins are subclasses of ``base``.

    With ``named``, the class's ``name`` attribute must equal the name it is registered
    under: that name is what records, identities and job lists carry, so a subclass that
    inherits its parent's ``name`` would pass for the parent.
    """
    article = "an" if base.__name__[:1] in "AEIOU" else "a"

    def check(obj: Any, name: str) -> Any:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise UserError(f"{_describe(obj)} is not {article} {base.__name__} subclass")
        if named and getattr(obj, "name", None) != name:
            raise UserError(
                f"{obj.__qualname__}.name is {getattr(obj, 'name', None)!r}; set "
                f"name = {name!r} (the name it is registered under)"
            )
        return obj

    return check


def a_callable(obj: Any, name: str) -> Any:
    """A ``check`` for registries whose plugins are functions (or other callables)."""
    if not callable(obj):
        raise UserError(f"{_describe(obj)} is not callable")
    return obj
