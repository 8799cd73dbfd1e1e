"""Formatting shared by the report and the comparison: tables of strings, numbers as text,
Markdown cells made safe."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    anchor: str = ""


def pct(x: Any, digits: int = 1) -> str:
    return "–" if missing(x) else f"{100 * float(x):.{digits}f}%"


def ci(lo: Any, hi: Any, scale: float = 100, digits: int = 1) -> str:
    if missing(lo) or missing(hi):
        return ""
    return f"[{scale * float(lo):.{digits}f}, {scale * float(hi):.{digits}f}]"


def num(x: Any, digits: int = 2) -> str:
    return "–" if missing(x) else f"{float(x):.{digits}f}"


def signed(x: Any, digits: int = 1, scale: float = 1) -> str:
    return "–" if missing(x) else f"{scale * float(x):+.{digits}f}"


def p_value(x: Any) -> str:
    if missing(x):
        return "–"
    x = float(x)
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def count_of(n: int, noun: str) -> str:
    """``1 call``, ``2 calls``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def missing(x: Any) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what a Markdown viewer would take for HTML


def md_cell(text: str) -> str:
    """Cells can hold model or error text: no raw HTML reaches a Markdown viewer."""
    text = _TAG_START.sub("&lt;", text.replace("&", "&amp;"))  # "<0.001" stays readable
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(t: Table) -> list[str]:
    """A table's Markdown lines (caption, header, rows, a blank line), cells made safe."""
    out = [f"**{t.caption}**", ""] if t.caption else []
    out.append("| " + " | ".join(md_cell(h) for h in t.headers) + " |")
    out.append("|" + "---|" * len(t.headers))
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in t.rows]
    return [*out, ""]
