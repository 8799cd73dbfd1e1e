"""A tiny random chat model, built locally and deterministically, for tests that need a real one.

Real inference servers (vLLM) and activation capture need a Hugging Face model directory, and
these machines cannot download one. :func:`build` writes one: a Qwen2-architecture causal LM
with random weights (``hidden`` 128, 2 layers, about 0.6 M parameters by default), a byte-level
BPE tokenizer trained here on text generated from a fixed seed, and a ChatML chat template with
Hermes-style tool calls (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``), which is
what vLLM's ``hermes`` tool parser reads. The same arguments give the same files, byte for byte.

It answers with noise: tests against it assert behaviour (a server starts, requests are
answered, tool calls are forced under ``tool_choice="required"``), never quality.

Needs ``torch``, ``transformers`` and ``tokenizers`` (the ``vllm`` extra has them). It imports
nothing from emotau, so it also runs as a script in an environment without emotau::

    python src/emotau/scripted/tinymodel.py OUT_DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from pathlib import Path

#: ChatML turns; tools listed in the system turn; the assistant's calls as Hermes <tool_call>
#: blocks; tool results as <tool_response> blocks in a user turn. Written for emotau.
CHAT_TEMPLATE = """\
{%- set sys_text = messages[0].content if messages and messages[0].role == 'system' else '' -%}
{%- if tools or sys_text -%}
<|im_start|>system
{{ sys_text }}
{%- if tools %}

You can call functions. Their signatures, one JSON object per line:
{% for t in tools %}{{ (t.function if t.function is defined else t) | tojson }}
{% endfor -%}
To call one, answer with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>.
{%- endif %}<|im_end|>
{% endif -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}
{%- elif m.role == 'tool' -%}
<|im_start|>user
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% elif m.role == 'assistant' -%}
<|im_start|>assistant
{{ m.content or '' }}
{%- for c in (m.tool_calls or []) %}
{%- set args = c.function.arguments %}
<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ args if args is string else args | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% else -%}
<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: not special: they must survive decoding, so that the tool parser sees them
MARKUP = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

_TEXT = """
i want to change my booking please the room hotel night date check in out guest name email
phone cancel refund price policy agent customer sorry thank you yes no wait why what how when
where can could would should not never always again still already today tomorrow reservation
confirm number card charge fee extra breakfast parking suite double single angry worried
confused frustrated upset calm fine okay great terrible help now really very
"""
_WORDS = tuple(_TEXT.split())


def _corpus(seed: int, lines: int = 4000) -> list[str]:
    """Deterministic training text for the tokenizer: words, numbers, JSON and punctuation."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        if i % 5 == 0:
            name = rng.choice(_WORDS)
            out.append(json.dumps({"name": f"get_{name}", "arguments": {name: rng.randint(0, 99)}}))
        out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"]))
    return out


def _tokenizer(seed: int, vocab_size: int):  # -> transformers.PreTrainedTokenizerFast
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in MARKUP])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 2048,
    max_positions: int = 32768,
) -> Path:
    """Write the model to ``out`` (created; its files replaced) and return the path.

    ``config.json`` records ``emotau_tiny_model`` (the arguments) and ``weights_sha256``.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(seed, vocab_size)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    cfg_file = path / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["emotau_tiny_model"] = {
        "seed": seed, "hidden": hidden, "layers": layers, "heads": heads, "kv_heads": kv_heads,
        "vocab_size": vocab_size, "max_positions": max_positions, "weights_sha256": weights,
    }  # fmt: skip
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the model directory to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build(args.out, seed=args.seed)
    info = json.loads((path / "config.json").read_text())["emotau_tiny_model"]
    print(f"tiny model in {path}: weights sha256 {info['weights_sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
