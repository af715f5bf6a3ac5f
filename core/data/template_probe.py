"""What a chat template renders, probed once per tokenizer, and the fallbacks for the rest.

:func:`template_for` picks the template in force (the tokenizer's, or the one
:class:`RenderOptions` names; ChatML when there is none) and probes what it renders natively:
tool calls, tool results and the tools list (``tool_calls``, role ``tool``, ``tools=``),
reasoning (``reasoning_content``) and its own system prompt. Where it does not,
:func:`fallback_tool_messages` writes tools as text (the Hermes/Qwen convention) and
reasoning goes before the answer inside ``<think>``. :func:`check_content` refuses a row whose
content holds one of the template's control tokens (a forged turn). :mod:`core.data.render`
templates and tokenizes rows with what this module decides.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

from core.data.normalise import Example
from core.data.problems import DataError
from core.data.templates import CHATML_TEMPLATE, MODEL_TEMPLATE, resolve_template

END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<|return|>", "<｜end▁of▁sentence｜>",
)
"""End-of-turn tokens used by common chat templates; those the tokenizer knows end a turn."""
CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")
"""The turn markers of ChatML (the fallback and the ``chatml`` template)."""

TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
"""The fallback's tools block in the system turn (the Hermes/Qwen wording), around one JSON
line per tool."""


@dataclass(frozen=True)
class RenderOptions:
    """How rows are rendered besides the tokenizer: ``data.chat_template``,
    ``data.default_system_prompt`` and ``data.text_chunking``."""

    chat_template: str = MODEL_TEMPLATE
    """``model``, a template name (``chatml``, TRL's) or a Jinja file."""
    default_system_prompt: str = "model"
    """For rows without a system turn: ``model`` (the template's own), a text, or empty."""
    text_chunking: bool = False
    """Text rows longer than ``max_length`` become several training rows, not one cut row."""

    @classmethod
    def from_config(cls, data: Any) -> "RenderOptions":
        """The options of a ``DataConfig``."""
        return cls(data.chat_template, data.default_system_prompt, data.text_chunking)


@dataclass(frozen=True)
class TemplateInfo:
    """What rendering does with one tokenizer and :class:`RenderOptions`, for people."""

    name: str
    """The template in force, e.g. ``the model's own`` or ``chatml``."""
    tools: str
    """``native`` (the template renders tools) or ``fallback``."""
    reasoning: str
    """``native`` (the template renders ``reasoning_content``) or ``fallback`` (``<think>``)."""
    system_prompt: str | None
    """What a row without a system turn gets; ``None`` for nothing."""
    system_from: str
    """Where that comes from: ``the template``, ``data.default_system_prompt`` or ``none``."""

    def lines(self) -> list[tuple[str, str]]:
        """``(label, text)`` lines for ``tunetop inspect`` and the dataset screen."""
        tools = ("native (the template renders tools=, tool_calls, role tool)"
                 if self.tools == "native" else
                 "fallback: <tools> in the system turn, <tool_call>, <tool_response>")
        system = (f"{self.system_prompt!r} ({self.system_from})" if self.system_prompt
                  else f"none ({self.system_from})")
        return [("template", self.name), ("system", system), ("tools", tools),
                ("reasoning", "native" if self.reasoning == "native"
                 else "fallback: <think>…</think> before the answer")]


class RenderError(DataError):
    """A row that cannot be rendered as training needs it: the chat template rejected it, or
    its content holds a control token. ``field`` names the part of the row."""

    def __init__(self, message: str, fix: str, line: int | None, field_name: str) -> None:
        super().__init__(message, fix, "", line)
        self.message = message
        self.field = field_name


@dataclass
class Template:
    """What rendering needs to know about one tokenizer and options, computed once."""

    tokenizer: Any
    template: str | None
    """The template passed to ``apply_chat_template``; ``None`` for the tokenizer's own."""
    note: str | None
    end_strings: tuple[str, ...]
    end_ids: frozenset[int]
    offsets: bool
    name: str
    tools_native: bool
    reasoning_native: bool
    template_system: str | None
    """The system prompt the template adds to rows without one, if it adds one."""
    system: str | None
    """The system turn given to rows without one (``data.default_system_prompt``); ``None``
    leaves them to the template."""
    control: tuple[str, ...] = ()
    """Special tokens that structure a conversation; content must not hold them."""

    @property
    def info(self) -> TemplateInfo:
        """This template for people."""
        if self.system is not None:
            system, where = self.system or None, "data.default_system_prompt"
        else:
            system, where = self.template_system, "the template's own"
        return TemplateInfo(self.name, "native" if self.tools_native else "fallback",
                            "native" if self.reasoning_native else "fallback", system,
                            where if system else "none")


def _control_tokens(tokenizer: Any, template: str | None, ends: list[str]) -> tuple[str, ...]:
    """The special tokens the tokenizer would read in content as structure, not text: BOS,
    EOS and the like, end-of-turn tokens, and every special token the chat template writes."""
    if getattr(tokenizer, "split_special_tokens", False):
        return ()  # the tokenizer reads special tokens in text as plain text
    found = set(getattr(tokenizer, "all_special_tokens", None) or ()) | set(ends)
    source = template or getattr(tokenizer, "chat_template", None)
    if isinstance(source, str):
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        found |= {t.content for t in added.values()
                  if getattr(t, "special", False) and t.content in source}
        # ChatML's markers structure the text even where the tokenizer does not know them
        # (the fallback, data.chat_template: chatml)
        found |= {t for t in CHATML_MARKERS if t in source}
    return tuple(sorted((t for t in found if isinstance(t, str) and t.strip()),
                        key=len, reverse=True))


_PROBE_TOOL = {"type": "function", "function": {
    "name": "tunetop_probe_tool", "description": "probe",
    "parameters": {"type": "object", "properties": {}}}}
_PROBE_CALLS = [
    {"role": "user", "content": "tunetop_probe_user"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
        "name": "tunetop_probe_call", "arguments": {"tunetop_probe_key": "tunetop_probe_value"}}}]},
    {"role": "tool", "name": "tunetop_probe_call", "content": "tunetop_probe_result"},
]
_PROBE_REASONING = [
    {"role": "user", "content": "tunetop_probe_user"},
    {"role": "assistant", "content": "tunetop_probe_answer",
     "reasoning_content": "tunetop_probe_thinking"},
]

_TEMPLATES: "weakref.WeakKeyDictionary[Any, dict[tuple, Template]]" = weakref.WeakKeyDictionary()
"""Inspected templates by tokenizer, then by (its template, EOS, options): probing renders a
few conversations, too slow to repeat for every row of the dataset screen."""


def _probe(tokenizer: Any, template: str | None, messages: list[dict[str, Any]],
           **kwargs: Any) -> str | None:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template,
                                             **kwargs)
    except Exception:  # a Jinja template can raise anything; then it does not support it
        return None


def _template_system(tokenizer: Any, template: str | None) -> str | None:
    """The system prompt the template adds to a row without one (SmolLM's "You are a helpful
    AI assistant named SmolLM..."): the difference between rendering a lone user turn and the
    same turn after a marked system turn."""
    user = [{"role": "user", "content": "tunetop_probe_user"}]
    mark = "tunetop_probe_system"
    with_system = _probe(tokenizer, template, [{"role": "system", "content": mark}, *user])
    without = _probe(tokenizer, template, user)
    if with_system is None or without is None or mark not in with_system:
        return None
    at = with_system.index(mark)
    before, after = with_system[:at], with_system[at + len(mark):]
    if without.startswith(before) and without.endswith(after) \
            and len(without) >= len(before) + len(after):
        return without[len(before):len(without) - len(after)].strip() or None
    return None


def template_for(tokenizer: Any, options: RenderOptions | None = None) -> Template:
    options = options or RenderOptions()
    key = (getattr(tokenizer, "chat_template", None), tokenizer.eos_token, options)
    try:
        cached = _TEMPLATES.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: inspect it every time
        cached = {}
    if key[0] is None or isinstance(key[0], str):
        if key in cached:
            return cached[key]

    def token_id(text: str) -> int | None:
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tokenizer.convert_ids_to_tokens(tid) == text:
            return tid
        return None

    eos = tokenizer.eos_token
    known = [s for s in dict.fromkeys((*END_OF_TURN_TOKENS, eos)) if s and token_id(s) is not None]
    template = note = None
    name = "the model's own"
    chosen = resolve_template(options.chat_template)
    if chosen is not None:
        template, name = chosen, options.chat_template
    elif not getattr(tokenizer, "chat_template", None):
        end = "<|im_end|>" if "<|im_end|>" in known else (eos or "<|im_end|>")
        template = CHATML_TEMPLATE.replace("END", repr(end))
        name = "ChatML (the tokenizer has none)"
        note = (f"The tokenizer has no chat template; a simple ChatML template ending turns "
                f"with {end} was used.")
    end_ids = frozenset(t for s in known if (t := token_id(s)) is not None)
    calls = _probe(tokenizer, template, _PROBE_CALLS, tools=[_PROBE_TOOL])
    tools_native = calls is not None and all(
        f"tunetop_probe_{w}" in calls for w in ("tool", "call", "key", "value", "result"))
    thinking = _probe(tokenizer, template, _PROBE_REASONING)
    system = None if options.default_system_prompt == "model" else options.default_system_prompt
    info = Template(tokenizer, template, note, tuple(sorted(known, key=len, reverse=True)),
                     end_ids, bool(getattr(tokenizer, "is_fast", False)), name, tools_native,
                     thinking is not None and "tunetop_probe_thinking" in thinking,
                     _template_system(tokenizer, template), system,
                     _control_tokens(tokenizer, template, known))
    if isinstance(key[0], (str, type(None))):
        cached[key] = info
    return info


def check_content(info: Template, example: Example) -> None:
    """Refuse content holding a control token: ``<|im_end|>`` in a user turn would end the
    turn there for the model, and what follows would read as a turn of its own."""
    if not info.control:
        return
    if example.messages is None:
        text = example.text or ""
        eos = info.tokenizer.eos_token
        parts = [("text", "the text", text.removesuffix(eos) if eos else text)]
    else:
        parts = []
        for i, m in enumerate(example.messages):
            where = f"the {m['role']} turn {i + 1}"
            parts.append((f"messages[{i}].content", where, m["content"]))
            if m.get("reasoning_content"):
                parts.append((f"messages[{i}].reasoning_content", f"the reasoning of {where}",
                              m["reasoning_content"]))
            if m.get("tool_calls"):  # the template writes the calls' JSON into the turn
                parts.append((f"messages[{i}].tool_calls", f"a tool call of {where}",
                              json.dumps(m["tool_calls"], ensure_ascii=False)))
        if example.tools:
            parts.append(("tools", "the tools list",
                          json.dumps(example.tools, ensure_ascii=False)))
    for field_name, where, content in parts:
        found = [(content.find(t), t) for t in info.control if t in content]
        if found:
            token = min(found, key=lambda f: (f[0], -len(f[1])))[1]  # the first in content
            raise RenderError(
                f"{where} contains {token}, a control token of the chat template: the "
                "tokenizer reads it as a turn boundary, not as text (a forged turn).",
                f"Remove {token} from the content, or break it up (e.g. {token[:2]} "
                f"{token[2:]}) if it is meant as text; if the row holds a whole conversation "
                "in one turn, split it into messages.", example.line, field_name)


def template_info(tokenizer: Any, options: RenderOptions | None = None) -> TemplateInfo:
    """Which template, system prompt, and tool and reasoning rendering rows get."""
    return template_for(tokenizer, options).info


def fallback_tool_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                           system: str | None) -> list[dict[str, Any]]:
    """Tool calls, results and definitions as plain turns, for templates that do not render
    them: the tools list (one JSON line each inside ``<tools>``) ends the system turn
    (``system`` starts it when the row has none), each call is a JSON line inside
    ``<tool_call>`` after the assistant's text, and consecutive results become one user turn
    of ``<tool_response>`` blocks. Assistant turns keep their ``train`` flag."""
    out: list[dict[str, Any]] = []
    results = False  # the last turn out is a user turn of tool results
    for message in messages:
        if message["role"] == "tool":
            block = f"<tool_response>\n{message['content']}\n</tool_response>"
            if results:
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
            results = True
            continue
        results = False
        turn = {k: v for k, v in message.items() if k != "tool_calls"}
        calls = "\n".join(
            "<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                          "arguments": c["function"]["arguments"]},
                                         ensure_ascii=False) + "\n</tool_call>"
            for c in message.get("tool_calls") or ())
        if calls:
            turn["content"] = f"{turn['content']}\n{calls}" if turn["content"].strip() else calls
        out.append(turn)
    if tools:
        block = TOOLS_INTRO + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools) \
            + TOOLS_OUTRO
        if out and out[0]["role"] == "system":
            first = out[0]["content"]
            out[0] = {**out[0], "content": f"{first}\n\n{block}" if first.strip() else block}
        else:
            out.insert(0, {"role": "system",
                           "content": f"{system}\n\n{block}" if system else block})
    return out
