"""Recovering reasoning and tool calls that a model wrote as plain text.

Small open models served without a tool-call parser often write their tool calls into the
message content instead of the structured ``tool_calls`` field, and reasoning models put
``<think>...</think>`` blocks in the content. The pure functions here undo both:

* :func:`split_reasoning` separates ``<think>`` blocks (and the server's ``reasoning_content``
  field) from the visible content.
* :func:`recover_tool_calls` finds tool calls written as text, in three styles tried in order
  (the first style that yields a call wins; the others are not applied to the same text):

  1. ``hermes``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks
     (Hermes/Qwen chat templates). Any name is accepted: the tags show intent. A block that
     cannot be read (cut or broken JSON, a tag never closed) is still a call: it comes back
     with ``error`` set, so that the agent gets an error observation instead of its broken
     call text reaching the customer.
  2. ``json``: the whole content (optionally in a ```` ``` ```` / ```` ```json ```` fence) is one
     call object, a list of them, or an OpenAI-shaped ``{"type": "function", "function": ...}``.
     Only names in ``tool_names`` are accepted.
  3. ``python``: ``name(key=literal, ...)`` calls or a pythonic list ``[a(x=1), b(y=2)]``
     (Llama/Gemma), optionally fenced (```` ```python ````, ```` ```tool_code ````) and
     optionally preceded by prose. Parsed with :mod:`ast`, never evaluated. Only names in
     ``tool_names``, keyword arguments with literal values, and only calls that end the message
     (nothing but whitespace, fences and separators after them), so that a call quoted in the
     middle of a sentence ("I can't run cancel(id='X') without your OK") is not executed.

Both functions use the standard library only and never raise on odd input.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["TextToolCall", "recover_tool_calls", "split_reasoning"]


@dataclass(frozen=True)
class TextToolCall:
    """A tool call recovered from message text."""

    name: str
    #: JSON object text (``json.dumps`` of the parsed arguments dict)
    arguments: str
    #: which text format it was written in: ``"hermes"``, ``"json"`` or ``"python"``
    style: str
    #: set for a ``<tool_call>`` block that could not be read: why. ``name`` is then what
    #: could be read of it (``"<unparsed>"`` if nothing) and ``arguments`` the block's text
    error: str | None = None


# --------------------------------------------------------------------------------------------
# reasoning
# --------------------------------------------------------------------------------------------

_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)


def split_reasoning(
    content: str | None, reasoning_field: str | None = None
) -> tuple[str | None, str | None]:
    """Split a response into (visible content, reasoning).

    Every ``<think>...</think>`` block is removed from ``content`` (tags matched
    case-insensitively, blocks may span lines). A closing ``</think>`` with no opening tag
    before it makes everything before it reasoning (chat templates that put the opening tag in
    the prompt); an unterminated ``<think>`` makes everything after it reasoning. Stray closing
    tags are dropped.

    The reasoning is the server's ``reasoning_field`` (e.g. ``reasoning_content``) followed by
    the extracted blocks, each stripped, joined with a blank line; ``None`` when there is none.
    The visible content is stripped; it is ``None`` only when ``content`` is ``None``
    (otherwise possibly ``''``).
    """
    parts: list[str] = []
    if isinstance(reasoning_field, str) and reasoning_field.strip():
        parts.append(reasoning_field.strip())
    if not isinstance(content, str):
        return None, "\n\n".join(parts) or None

    tags = list(_THINK_TAG.finditer(content))
    visible: list[str] = []
    pos = 0
    inside = False
    block_start = 0
    first = tags[0] if tags else None
    if first is not None and first.group(1):  # a closing tag before any opening one
        parts.append(content[: first.start()])
        pos = first.end()
        tags = tags[1:]
    for tag in tags:
        closing = bool(tag.group(1))
        if not inside:
            visible.append(content[pos : tag.start()])
            if closing:  # stray closing tag: drop it
                pos = tag.end()
            else:
                inside = True
                block_start = tag.end()
                pos = tag.end()
        elif closing:
            parts.append(content[block_start : tag.start()])
            inside = False
            pos = tag.end()
        # an opening tag inside a block is just reasoning text
    if inside:
        parts.append(content[block_start:])
    else:
        visible.append(content[pos:])

    reasoning = "\n\n".join(p.strip() for p in parts if p.strip()) or None
    return "".join(visible).strip(), reasoning


# --------------------------------------------------------------------------------------------
# tool calls: shared helpers
# --------------------------------------------------------------------------------------------

_MAX_LITERAL_CHARS = 20_000  # longest call text we hand to ast (python style, python in tags)
_MAX_CANDIDATES = 100  # python-style call sites examined per message


def _arguments_text(raw: Any) -> str | None:
    """Normalise an ``arguments`` value to JSON object text, or None if it is not an object."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        args: Any = {}
    elif isinstance(raw, str):
        try:
            args = json.loads(raw)
        except ValueError:
            return None
    else:
        args = raw
    if not isinstance(args, dict):
        return None
    try:
        return json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        return None


def _call_from_obj(obj: Any) -> tuple[str, str] | None:
    """(name, arguments JSON) from a call-shaped JSON value, or None.

    Accepts ``{"name", "arguments"|"parameters"}``, ``{"type": "function", "function": {...}}``,
    ``{"function": {...}}`` and ``{"function": "name", "arguments": ...}``.
    """
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict) and "name" not in obj:
        obj = fn
        name = obj.get("name")
    elif isinstance(fn, str) and "name" not in obj:
        name = fn
    else:
        name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    if "arguments" in obj:
        raw = obj["arguments"]
    elif "parameters" in obj:
        raw = obj["parameters"]
    else:
        raw = None
    args = _arguments_text(raw)
    if args is None:
        return None
    return name.strip(), args


_FENCE = re.compile(r"\A```[ \t]*([\w+-]*)[ \t]*\n?(.*?)\n?[ \t]*```\Z", re.DOTALL)


def _unfence(text: str, langs: Collection[str]) -> str:
    """Text inside a whole-text ``` fence whose language is in ``langs`` (or none), else text."""
    m = _FENCE.match(text)
    if m and m.group(1).lower() in langs:
        return m.group(2).strip()
    return text


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------------------------
# python style (also used for python written inside <tool_call> tags)
# --------------------------------------------------------------------------------------------

_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _balanced_end(text: str, start: int, limit: int) -> int | None:
    """Index just past the bracket matching ``text[start]``, skipping Python string literals."""
    stack: list[str] = []
    i = start
    end = min(len(text), start + limit)
    while i < end:
        ch = text[i]
        if ch in "'\"":
            triple = text[i : i + 3] == ch * 3
            quote = ch * 3 if triple else ch
            i += len(quote)
            while i < end:
                if text[i] == "\\":
                    i += 2
                    continue
                if text.startswith(quote, i):
                    break
                if not triple and text[i] == "\n":
                    return None
                i += 1
            else:
                return None
            i += len(quote)
            continue
        if ch in _CLOSE:
            stack.append(_CLOSE[ch])
        elif ch in ")]}":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
        elif ch == "#":  # a comment: up to the end of the line
            nl = text.find("\n", i, end)
            if nl < 0:
                return None
            i = nl
            continue
        i += 1
    return None


def _literal(node: ast.expr) -> Any:
    """The value of a literal node; raises ValueError for anything else (incl. ``...``)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and not isinstance(
            sub.value, str | int | float | bool | type(None)
        ):
            raise ValueError("unsupported constant")
    return ast.literal_eval(node)


def _python_call(node: ast.expr, names: Collection[str] | None) -> tuple[str, str] | None:
    """(name, arguments JSON) from an ``ast.Call`` with literal keyword arguments, or None."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    if names is not None and node.func.id not in names:
        return None
    if node.args:
        return None
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:  # **kwargs
            return None
        try:
            args[kw.arg] = _literal(kw.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None
    try:
        return node.func.id, json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        return None


def _python_calls(source: str, names: Collection[str] | None) -> list[tuple[str, str]] | None:
    """Calls from a single call expression or a list of them; None unless all are valid."""
    if len(source) > _MAX_LITERAL_CHARS:
        return None
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    body = tree.body
    nodes = body.elts if isinstance(body, ast.List) else [body]
    if not nodes:
        return None
    calls = [_python_call(n, names) for n in nodes]
    if any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


# Filler allowed between and after python-style calls: whitespace, separators, fences.
# (A word may only follow ``` as a fence language; written to avoid catastrophic backtracking.)
_TAIL_FILLER = re.compile(r"[\s,;.`]*(?:(?<=```)[\w+-]+[\s,;.`]*)*\Z")


def _recover_python(text: str, names: set[str]) -> tuple[list[TextToolCall], str] | None:
    idents = sorted((n for n in names if n.isidentifier()), key=len, reverse=True)
    if not idents:
        return None
    alt = "|".join(re.escape(n) for n in idents)
    site = re.compile(rf"(?:(?<![\w.)\]])(\[\s*))?(?<![\w.])(?:{alt})\s*\(")
    spans: list[tuple[int, int, list[tuple[str, str]]]] = []
    covered = 0
    for n, m in enumerate(site.finditer(text)):
        if n >= _MAX_CANDIDATES:
            break
        if m.start() < covered:
            continue
        if m.group(1):  # a pythonic list: take it whole or not at all
            end = _balanced_end(text, m.start(), _MAX_LITERAL_CHARS)
            if end is not None:
                calls = _python_calls(text[m.start() : end], names)
                covered = end  # accepted or not, do not pick calls out of a list
                if calls is not None:
                    spans.append((m.start(), end, calls))
                continue
        start = m.start(1) + len(m.group(1)) if m.group(1) else m.start()
        end = _balanced_end(text, m.end() - 1, _MAX_LITERAL_CHARS)
        if end is None:
            continue
        calls = _python_calls(text[start:end], names)
        if calls is not None:
            spans.append((start, end, calls))
            covered = end
    # Keep the run of calls that ends the message (nothing but filler after and between them).
    first = len(spans)
    for k in range(len(spans) - 1, -1, -1):
        after = spans[k + 1][0] if k + 1 < len(spans) else len(text)
        if not _TAIL_FILLER.match(text, spans[k][1], after):
            break
        first = k
    if first == len(spans):
        return None
    recovered = [
        TextToolCall(name, args, "python") for _, _, calls in spans[first:] for name, args in calls
    ]
    remaining = text[: spans[first][0]].rstrip()
    remaining = re.sub(r"(?:```[\w+-]*|`)\s*\Z", "", remaining)  # the fence it opened
    return recovered, _tidy(remaining)


# --------------------------------------------------------------------------------------------
# hermes style
# --------------------------------------------------------------------------------------------

_TOOL_CALL_TAG = re.compile(r"<(/?)tool_call>", re.IGNORECASE)
_DECODER = json.JSONDecoder()


def _hermes_body(body: str) -> tuple[list[tuple[str, str]], int] | None:
    """Calls in one tag body, and how many chars of the body (from its start) they used."""
    stripped = body.strip()
    lead = len(body) - len(body.lstrip())
    inner = _unfence(stripped, ("", "json"))
    fenced = inner != stripped
    value: Any = None
    used = len(body)
    try:
        value, end = _DECODER.raw_decode(inner)
        if not fenced:
            used = lead + end
    except (ValueError, RecursionError):
        value = None
    if value is None and len(inner) <= _MAX_LITERAL_CHARS:
        try:  # python-ish dict: {'name': 'x', 'arguments': {...}}
            value = ast.literal_eval(inner)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            value = None
        if value is None:  # python call syntax inside the tags
            pycalls = _python_calls(inner, None)
            return (pycalls, len(body)) if pycalls else None
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_obj(v) for v in items]
    found = [c for c in calls if c is not None]
    if not found or len(found) != len(calls):
        return None
    return found, used


_NAME_IN_BODY = re.compile(r"""["']name["']\s*:\s*["']([\w.-]{1,200})["']""")
_SNIPPET_CHARS = 200


def _broken_hermes(body: str, closed: bool) -> TextToolCall:
    """The call for a ``<tool_call>`` block that cannot be read, with why in ``error``."""
    inner = _unfence(body.strip(), ("", "json"))
    try:
        json.loads(inner)
        why = 'arguments must be a JSON object, as in {"name": "<tool>", "arguments": {...}}'
    except ValueError as exc:
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        why = f"arguments are not valid JSON ({reason}{where})"
    except RecursionError:
        why = "arguments are not valid JSON (nested too deeply)"
    if not closed:
        why += "; the <tool_call> tag was never closed"
    snippet = inner if len(inner) <= _SNIPPET_CHARS else inner[:_SNIPPET_CHARS] + "..."
    found = _NAME_IN_BODY.search(inner)
    return TextToolCall(
        found[1] if found else "<unparsed>",
        inner,
        "hermes",
        f"the <tool_call> text could not be read: {why}: {snippet}",
    )


def _looks_like_a_call(body: str) -> bool:
    """An unclosed ``<tool_call>``'s text is a (cut) call when it is empty or starts as JSON;
    other text after the tag is prose that names the tag."""
    inner = _unfence(body.strip(), ("", "json"))
    return not inner or inner.startswith(("{", "["))


def _recover_hermes(text: str) -> tuple[list[TextToolCall], str] | None:
    tags = list(_TOOL_CALL_TAG.finditer(text))
    if not any(not t.group(1) for t in tags):
        return None
    recovered: list[TextToolCall] = []
    pieces: list[str] = []
    pos = 0
    for i, tag in enumerate(tags):
        if tag.group(1) or tag.start() < pos:
            continue
        nxt = tags[i + 1] if i + 1 < len(tags) else None
        body_end = nxt.start() if nxt else len(text)
        closed = nxt is not None and bool(nxt.group(1))
        body = text[tag.end() : body_end]
        parsed = _hermes_body(body)
        if parsed is None and not closed and not _looks_like_a_call(body):
            continue  # the tag named in prose ("I use <tool_call> tags"), not a call
        pieces.append(text[pos : tag.start()])
        if parsed is None:  # unreadable: a call all the same, whose result is its error
            recovered.append(_broken_hermes(body, closed))
            pos = nxt.end() if closed and nxt is not None else body_end
            continue
        calls, used = parsed
        recovered.extend(TextToolCall(name, args, "hermes") for name, args in calls)
        # a closed block goes whole; after an unterminated one, text past the call stays
        pos = nxt.end() if closed and nxt is not None else tag.end() + used
    if not recovered:
        return None
    pieces.append(text[pos:])
    return recovered, _tidy("".join(pieces))


# --------------------------------------------------------------------------------------------
# bare JSON
# --------------------------------------------------------------------------------------------


def _recover_json(text: str, names: set[str]) -> tuple[list[TextToolCall], str] | None:
    inner = _unfence(text.strip(), ("", "json"))
    if not inner.startswith(("{", "[")):
        return None
    try:
        value = json.loads(inner)
    except (ValueError, RecursionError):
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_obj(v) for v in items]
    found = [c for c in calls if c is not None and c[0] in names]
    if not found or len(found) != len(calls):
        return None
    return [TextToolCall(name, args, "json") for name, args in found], ""


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def recover_tool_calls(
    content: str | None, tool_names: Collection[str]
) -> tuple[list[TextToolCall], str]:
    """Tool calls written as text, and the text that remains once they are removed.

    Formats are tried in order (hermes ``<tool_call>`` tags, a bare JSON call object/list,
    python-style calls) and the first that yields a call wins. Hermes calls are recovered
    whatever their name; JSON and python calls only when their name is in ``tool_names``.
    A ``<tool_call>`` block that cannot be read comes back as a call with ``error`` set (an
    unclosed one takes the text up to the next tag, or to the end). The remaining text is the
    content with the recovered call text (and a fence left empty by it) removed, stripped.

    Never raises: on any problem it returns ``([], content or "")``.
    """
    if not isinstance(content, str):
        return [], ""
    try:
        names = {n for n in tool_names if isinstance(n, str)}
        for attempt in (
            lambda: _recover_hermes(content),
            lambda: _recover_json(content, names),
            lambda: _recover_python(content, names),
        ):
            result = attempt()
            if result is not None and result[0]:
                return result
    except Exception:
        pass
    return [], content
