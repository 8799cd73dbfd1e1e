"""Emotional user variants: definitions, files, intensities and composition.

A *variant* is a block of text appended to the simulated customer's system prompt. The control
arm appends nothing. A *selection* is what an experiment names: ``anger``, ``anger:severe``,
``anxiety+confusion:mild`` (components joined by ``+``, each with an optional intensity).

Variant files (TOML or YAML) have the same schema as the built-in ``builtin.toml``::

    [variants.impatient]
    description = "Short, clipped messages; wants it done now."
    emotion = "frustration"          # what the manipulation check looks for (optional; one of
                                     # emotau.emotion.EMOTIONS)
    text = "..."                     # one text for every intensity, or a table:
    # [variants.impatient.text]
    # mild = "..."; moderate = "..."; severe = "..."
    [variants.impatient.phrases]     # optional, used only by the offline scripted user
    moderate = ["..."]
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

from emotau.core import UserError
from emotau.emotion import EMOTIONS

INTENSITIES: tuple[str, ...] = ("mild", "moderate", "severe")
DEFAULT_INTENSITY = "moderate"
CONTROL = "control"
_ALLOWED_KEYS = {"description", "emotion", "text", "phrases"}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str = ""
    emotion: str | None = None
    texts: Mapping[str, str] = field(default_factory=dict)  # intensity -> text
    phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "builtin"

    @property
    def is_control(self) -> bool:
        return not self.texts


@dataclass(frozen=True)
class Component:
    variant: Variant
    intensity: str

    @property
    def label(self) -> str:
        if self.variant.is_control or self.intensity == DEFAULT_INTENSITY:
            return self.variant.name
        return f"{self.variant.name}:{self.intensity}"


@dataclass(frozen=True)
class VariantSelection:
    """A resolved experiment arm: one or more components, composed in order."""

    components: tuple[Component, ...]

    @property
    def label(self) -> str:
        return "+".join(c.label for c in self.components)

    @property
    def is_control(self) -> bool:
        return all(c.variant.is_control for c in self.components)

    @cached_property
    def text(self) -> str:
        """The exact block appended to the user's system prompt ('' for control)."""
        return "\n\n".join(
            c.variant.texts[c.intensity] for c in self.components if not c.variant.is_control
        )

    @cached_property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @cached_property
    def digest(self) -> str:
        """Hash of everything about this arm that can change results (text, emotions, phrases)."""
        parts = [[c.variant.name, c.intensity, c.variant.emotion] for c in self.components]
        blob = json.dumps([self.text, parts, self.phrases()], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def emotions(self) -> list[str]:
        return [c.variant.emotion for c in self.components if c.variant.emotion]

    @property
    def emotion_intensities(self) -> list[str]:
        """The intensity of each entry of :attr:`emotions`."""
        return [c.intensity for c in self.components if c.variant.emotion]

    def phrases(self) -> list[str]:
        out: list[str] = []
        for c in self.components:
            out.extend(c.variant.phrases.get(c.intensity, ()))
        return out

    def apply(self, base_prompt: str) -> str:
        text = self.text
        return f"{base_prompt}\n\n{text}" if text else base_prompt

    def record(self) -> dict[str, Any]:
        """What each episode stores about its variant."""
        return {
            "label": self.label,
            "components": [
                {"name": c.variant.name, "intensity": c.intensity, "emotion": c.variant.emotion}
                for c in self.components
            ],
            "text": self.text,
            "text_sha256": self.text_sha256,
        }


class VariantLibrary:
    """The variants available to one run: the built-ins plus any from variant files."""

    def __init__(self, variants: Iterable[Variant] = ()) -> None:
        self._variants: dict[str, Variant] = {}
        for v in variants:
            self._variants[v.name] = v

    @classmethod
    def default(cls, extra_files: Iterable[str | Path] = ()) -> VariantLibrary:
        lib = cls(_builtin_variants())
        for path in extra_files:
            lib.add_file(path)
        return lib

    def add_file(self, path: str | Path) -> None:
        for v in load_variant_file(path):
            if v.name == CONTROL:
                raise UserError(
                    f"variants file {str(path)!r}: variant 'control' is reserved "
                    "(it is the base prompt exactly); give yours another name"
                )
            self._variants[v.name] = v

    def names(self) -> list[str]:
        return list(self._variants)

    def __getitem__(self, name: str) -> Variant:
        try:
            return self._variants[name]
        except KeyError:
            raise UserError(
                f"unknown variant {name!r}; allowed: {', '.join(self._variants)}"
            ) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._variants.values())

    def select(self, spec: str) -> VariantSelection:
        """Parse ``anxiety+confusion:severe`` into a :class:`VariantSelection`."""
        spec = spec.strip()
        if not spec:
            raise UserError("empty variant name")
        comps: list[Component] = []
        for part in spec.split("+"):
            name, _, intensity = part.strip().partition(":")
            variant = self[name.strip()]
            intensity = intensity.strip() or DEFAULT_INTENSITY
            if intensity not in INTENSITIES:
                raise UserError(
                    f"unknown intensity {intensity!r} in variant {spec!r}; "
                    f"allowed: {', '.join(INTENSITIES)}"
                )
            if variant.is_control and intensity != DEFAULT_INTENSITY:
                raise UserError(f"variant {name!r} has no intensities (it injects nothing)")
            comps.append(Component(variant, intensity))
        if len(comps) > 1:
            empty = next((c.variant.name for c in comps if c.variant.is_control), None)
            if empty is not None:
                raise UserError(
                    f"variant {empty!r} injects nothing and cannot be combined in {spec!r}"
                )
        names = [c.variant.name for c in comps]
        if len(set(names)) != len(names):
            raise UserError(f"variant {spec!r} names the same variant twice")
        return VariantSelection(tuple(comps))


# ------------------------------------------------------------------------------ file loading
def _builtin_variants() -> list[Variant]:
    res = files("emotau.episode").joinpath("builtin_variants.toml")
    return _parse_document(tomllib.loads(res.read_text(encoding="utf-8")), "builtin.toml")


def load_variant_file(path: str | Path) -> list[Variant]:
    """Read a TOML (.toml) or YAML (.yaml/.yml) variant file; errors name file, variant, field."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read variants file {str(p)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"variants file {str(p)!r} is not UTF-8 text") from None
    if p.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise UserError(f"variants file {str(p)!r}: invalid YAML{at}") from None
    elif p.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"variants file {str(p)!r}: invalid TOML: {exc}") from None
    else:
        raise UserError(f"variants file {str(p)!r}: expected a .toml, .yaml or .yml file")
    return _parse_document(doc, str(p))


def _parse_document(doc: Any, source: str) -> list[Variant]:
    def fail(variant: str | None, fld: str | None, msg: str) -> UserError:
        where = f"variants file {source!r}"
        if variant is not None:
            where += f", variant {variant!r}"
        if fld is not None:
            where += f", field {fld!r}"
        return UserError(f"{where}: {msg}")

    if not isinstance(doc, Mapping) or not isinstance(doc.get("variants"), Mapping):
        raise fail(None, "variants", "expected a top-level 'variants' table")
    out: list[Variant] = []
    for name, body in doc["variants"].items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise fail(str(name), None, "names may use letters, digits, '-' and '_' only")
        if not isinstance(body, Mapping):
            raise fail(name, None, "expected a table")
        unknown = set(body) - _ALLOWED_KEYS
        if unknown:
            raise fail(
                name,
                sorted(unknown)[0],
                f"unknown field; allowed: {', '.join(sorted(_ALLOWED_KEYS))}",
            )
        description = body.get("description", "")
        if not isinstance(description, str):
            raise fail(name, "description", "must be a string")
        emotion = body.get("emotion")
        if emotion is not None and (not isinstance(emotion, str) or not emotion.strip()):
            raise fail(name, "emotion", "must be a non-empty string")
        if emotion is not None and emotion not in EMOTIONS:  # the analysis could not check it
            raise fail(
                name, "emotion", f"unknown emotion {emotion!r}; allowed: {', '.join(EMOTIONS)}"
            )
        texts: dict[str, str] = {}
        text = body.get("text")
        if isinstance(text, str):
            if not text.strip():
                raise fail(name, "text", "must not be empty (omit it for a control arm)")
            texts = dict.fromkeys(INTENSITIES, text.strip())
        elif isinstance(text, Mapping):
            for key, val in text.items():
                if key not in INTENSITIES:
                    raise fail(
                        name, f"text.{key}", f"allowed intensities: {', '.join(INTENSITIES)}"
                    )
                if not isinstance(val, str) or not val.strip():
                    raise fail(name, f"text.{key}", "must be a non-empty string")
                texts[key] = val.strip()
            missing = [i for i in INTENSITIES if i not in texts]
            if missing:
                raise fail(name, f"text.{missing[0]}", "missing (give all three intensities)")
        elif text is not None:
            raise fail(name, "text", "must be a string or a table of intensities")
        phrases: dict[str, tuple[str, ...]] = {}
        raw_phrases = body.get("phrases", {})
        if isinstance(raw_phrases, list):
            raw_phrases = dict.fromkeys(INTENSITIES, raw_phrases)
        if not isinstance(raw_phrases, Mapping):
            raise fail(name, "phrases", "must be a list or a table of intensities")
        for key, val in raw_phrases.items():
            if key not in INTENSITIES:
                raise fail(name, f"phrases.{key}", f"allowed intensities: {', '.join(INTENSITIES)}")
            if not isinstance(val, list) or not all(isinstance(s, str) for s in val):
                raise fail(name, f"phrases.{key}", "must be a list of strings")
            phrases[key] = tuple(val)
        if not texts and emotion is not None:
            raise fail(name, "text", "a variant with an emotion needs a text")
        out.append(Variant(name, description, emotion, texts, phrases, source))
    return out
