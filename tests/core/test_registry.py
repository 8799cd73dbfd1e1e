"""The plugin Registry, against real entry points of distributions installed in tmp_path."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from emotau.core._errors import UserError
from emotau.core._registry import GROUPS, Registry, a_callable, subclass_of
from helpers import install_plugin, plugin_site

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
    class Base:
        name = "base"

    class Good(Base):
        name = "good"

    class Unnamed(Base):
        pass

    def family(param):
        return ("family", param)

    class Nested:
        class Inner(Base):
            name = "inner"

    NOT_A_CLASS = 42
"""


class Base:
    """Stands in for a plugin interface (AgentStrategy, Scheduler, ...)."""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``install(dist, {group: {name: ref}}, files)``: a plugin on this process's sys.path."""
    monkeypatch.syspath_prepend(str(plugin_site(tmp_path)))
    before = set(sys.modules)

    def go(dist: str, eps: dict[str, dict[str, str]], files: dict[str, str] | None = None) -> None:
        install_plugin(tmp_path, dist, eps, files)

    yield go
    for name in set(sys.modules) - before:  # the plugin modules this test imported
        if name.startswith("rplug"):
            del sys.modules[name]


def _domains(**kw: Any) -> Registry[Any]:
    return Registry("domain", **kw)  # a fresh registry reads the entry points anew


def test_names_come_from_the_group_only(install) -> None:
    install(
        "rplug-a",
        {
            "emotau.domains": {"zeta": "rplug_a:Good", "alpha": "rplug_a:Good"},
            "emotau.agents": {"not-a-domain": "rplug_a:Good"},
        },
        {"rplug_a.py": PLUGIN},
    )
    names = _domains().names()
    assert names == sorted(names)
    assert {"alpha", "zeta", "hotel", "tau-bench", "tau2"} <= set(names)
    assert "not-a-domain" not in names
    assert "not-a-domain" in Registry("agent strategy").names()


def test_plugins_load_lazily_and_once(install) -> None:
    install(
        "rplug-lazy", {"emotau.domains": {"lazy": "rplug_lazy:Good"}}, {"rplug_lazy.py": PLUGIN}
    )
    reg = _domains()
    assert "lazy" in reg and "rplug_lazy" not in sys.modules  # listing imports nothing
    first = reg.get("lazy")
    assert first.__name__ == "Good" and "rplug_lazy" in sys.modules
    assert reg.get("lazy") is first
    assert reg.source("lazy") == "rplug_lazy:Good (rplug-lazy)"


def test_exact_alias_and_family_names(install) -> None:
    install(
        "rplug-b",
        {"emotau.domains": {"fam": "rplug_b:family", "good": "rplug_b:Good"}},
        {"rplug_b.py": PLUGIN},
    )
    reg = _domains(aliases={"the-family": "fam", "gone": "not-installed"})
    found = reg.resolve("good")
    assert (found.plugin.__name__, found.name, found.param) == ("Good", "good", None)
    found = reg.resolve("fam:retail:train")  # the parameter keeps its colons
    assert (found.name, found.param) == ("fam", "retail:train")
    assert found.plugin("x") == ("family", "x")
    assert reg.resolve("the-family:dev").name == "fam"  # an alias works as a family too
    assert reg.canonical("the-family") == "fam"
    assert "gone" not in reg and reg.canonical_or_none("gone") is None
    assert "fam:retail" not in reg  # `in` is for names, not family:param


def test_unknown_names_list_the_installed_ones(install) -> None:
    install("rplug-c", {"emotau.agents": {"mine": "rplug_c:Good"}}, {"rplug_c.py": PLUGIN})
    reg = Registry("agent strategy")
    with pytest.raises(UserError) as err:
        reg.get("nope")
    assert (
        str(err.value)
        == "unknown agent strategy 'nope'; allowed: act, few-shot, mine, react, tool-calling"
    )
    with pytest.raises(
        UserError, match="unknown agent strategy 'nope:x'; allowed: act, few-shot, mine"
    ):
        reg.resolve("nope:x")
    with pytest.raises(UserError, match=r"'hotel'; allowed: none installed$"):
        Registry("activation backend").get("hotel")


def test_module_object_refs_only_where_allowed(install) -> None:
    install("rplug-d", {}, {"rplug_d.py": PLUGIN})
    reg = _domains()
    with pytest.raises(UserError) as err:
        reg.resolve("rplug_d:Good")
    assert "or package.module:object" not in str(err.value)
    found = reg.resolve("rplug_d:Good", allow_refs=True)
    assert (found.plugin.__name__, found.name, found.param) == ("Good", "rplug_d:Good", None)
    assert reg.resolve("rplug_d:Nested.Inner", allow_refs=True).plugin.name == "inner"
    # a mistyped family is not a module path: the message lists what is installed
    with pytest.raises(UserError, match=r"unknown domain 'tau-bnech:retail'; allowed: .*hotel"):
        reg.resolve("tau-bnech:retail", allow_refs=True)
    with pytest.raises(UserError, match="cannot import domain module 'rplug_missing'"):
        reg.resolve("rplug_missing:X", allow_refs=True)
    with pytest.raises(UserError, match="module 'rplug_d' has no attribute 'Nope'"):
        reg.resolve("rplug_d:Nope", allow_refs=True)
    with pytest.raises(UserError, match=r"expected package\.module:object"):
        reg.resolve("..:x", allow_refs=True)


BROKEN = {
    "rplug_raises.py": 'raise RuntimeError("line one\\nline two")\n',
    "rplug_imports.py": "import rplug_not_installed\n",
}


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("rplug_raises:X", "RuntimeError: line one line two"),
        ("rplug_imports:X", "ModuleNotFoundError: No module named 'rplug_not_installed'"),
        ("rplug_e:Missing", "AttributeError: module 'rplug_e' has no attribute 'Missing'"),
        ("rplug_absent:X", "ModuleNotFoundError: No module named 'rplug_absent'"),
    ],
)
def test_a_plugin_that_fails_to_load_is_one_line(install, ref, needle) -> None:
    install("rplug-e", {"emotau.domains": {"broken": ref}}, {**BROKEN, "rplug_e.py": PLUGIN})
    reg = _domains()
    assert "broken" in reg.names()  # listed: it is installed, just not loadable
    for _ in range(2):  # a failure is not cached as a success
        with pytest.raises(UserError) as err:
            reg.get("broken")
        msg = str(err.value)
        assert msg.startswith(f"cannot load domain 'broken' ({ref} (rplug-e)): ")
        assert needle in msg and "\n" not in msg
    assert reg.get("hotel").name == "hotel"  # the others still work


def test_wrong_types_are_one_line(install) -> None:
    install(
        "rplug-f",
        {
            "emotau.agents": {
                "good": "rplug_f:Good",
                "unnamed": "rplug_f:Unnamed",
                "number": "rplug_f:NOT_A_CLASS",
                "func": "rplug_f:family",
            }
        },
        {"rplug_f.py": PLUGIN},
    )
    import rplug_f

    reg = Registry("agent strategy", check=subclass_of(rplug_f.Base, named=True))
    assert reg.get("good") is rplug_f.Good
    cases = {
        "unnamed": "agent strategy 'unnamed' (rplug_f:Unnamed (rplug-f)): Unnamed.name is "
        "'base'; set name = 'unnamed' (the name it is registered under)",
        "number": "agent strategy 'number' (rplug_f:NOT_A_CLASS (rplug-f)): the int 42 is not a "
        "Base subclass",
        "func": "agent strategy 'func' (rplug_f:family (rplug-f)): the function family is not "
        "a Base subclass",
    }
    for name, message in cases.items():
        with pytest.raises(UserError) as err:
            reg.get(name)
        assert str(err.value) == message
    # without named=True the inherited name is fine
    assert Registry("agent strategy", check=subclass_of(rplug_f.Base)).get("unnamed").name == "base"
    calls = Registry("model provider", check=a_callable)
    assert calls.resolve("rplug_f:family", allow_refs=True).plugin is rplug_f.family
    with pytest.raises(UserError, match=r"^model provider 'rplug_f:NOT_A_CLASS' .*not callable$"):
        calls.resolve("rplug_f:NOT_A_CLASS", allow_refs=True)


def test_the_first_distribution_on_the_path_wins(tmp_path, monkeypatch) -> None:
    files = {"rplug_g.py": PLUGIN}
    install_plugin(
        tmp_path / "first", "rplug-g1", {"emotau.domains": {"dup": "rplug_g:Good"}}, files
    )
    install_plugin(tmp_path / "second", "rplug-g2", {"emotau.domains": {"dup": "rplug_g:Base"}})
    monkeypatch.syspath_prepend(str(plugin_site(tmp_path / "second")))
    monkeypatch.syspath_prepend(str(plugin_site(tmp_path / "first")))
    try:
        assert _domains().get("dup").__name__ == "Good"
        assert _domains().source("dup") == "rplug_g:Good (rplug-g1)"
    finally:
        sys.modules.pop("rplug_g", None)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown plugin kind 'widget'"):
        Registry("widget")


def test_builtins_are_entry_points_and_pass_their_checks() -> None:
    """Every built-in is declared in pyproject.toml, installed, and loads through its registry
    (so a strategy or scheduler whose ``name`` differs from its entry point fails here)."""
    from emotau.domains import DOMAINS
    from emotau.episode._agents import AGENT_STRATEGIES
    from emotau.episode._users import USER_STRATEGIES
    from emotau.launch import SCHEDULERS
    from emotau.models._providers import PROVIDERS

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    installed = {
        group: {ep.name: ep.value for ep in distribution("emotau").entry_points.select(group=group)}
        for group in GROUPS.values()
    }
    for group, eps in installed.items():
        assert eps == declared.get(group, {}), f"reinstall emotau: {group} is stale"
    registries = [DOMAINS, AGENT_STRATEGIES, USER_STRATEGIES, PROVIDERS, SCHEDULERS]
    assert {r.group for r in registries} <= set(declared)
    for reg in registries:
        for name in declared[reg.group]:
            plugin = reg.get(name)
            if reg is not DOMAINS and reg is not PROVIDERS:
                assert plugin.name == name
    assert AGENT_STRATEGIES.get("tool_calling") is AGENT_STRATEGIES.get("tool-calling")


def test_nothing_registers_at_import_time() -> None:
    """The registry has no way to add a plugin from code: the environment is the only source."""
    public = {n for n in dir(Registry) if not n.startswith("_")}
    assert public == {"canonical", "canonical_or_none", "get", "names", "resolve", "source"}
