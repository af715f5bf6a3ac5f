"""Rendering with the loss mask: the exact tokens the model sees and which of them are trained.

:func:`render_example` templates a row with the chat template (the tokenizer's, or the one
:class:`RenderOptions` names; ChatML when there is none), tokenizes it and marks the assistant
turns, with their end-of-turn token, as trained; tool results, prompts and turns of weight 0
are masked. :func:`tokenize_for_training` gives TRL's ``SFTTrainer`` the same rows as plain
``input_ids``/``labels`` lists.

Tool calls, tool results and the tools list go to the template as ``tool_calls``, role
``tool`` and ``tools=`` when it renders them (probed once per tokenizer). When it does not,
the documented fallback (:func:`fallback_tool_messages`) writes them as text the model can
learn: the tools list in the system turn inside ``<tools>``, each call as JSON inside
``<tool_call>`` in the assistant turn, and the results inside ``<tool_response>`` in a user
turn (the Hermes/Qwen convention). Reasoning goes to the template as ``reasoning_content``
where it renders it, else before the answer inside ``<think>``.

Memory per row is bounded: a long row is cut before it is tokenized with offsets (a few
characters per kept token, more until the cut holds enough tokens and a longer cut keeps the
same ones), and its full length is counted in pieces (:func:`count_tokens`). A row whose
content holds one of the template's control tokens (``<|im_end|>`` in a user turn) is refused
with :class:`RenderError`: the tokenizer would read it as a turn boundary, a forged turn.
"""

from __future__ import annotations

import itertools
import json
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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

LONG_TEXT_CHARS = 1 << 18
"""Texts longer than this are tokenized a piece at a time (see :func:`count_tokens`)."""
COUNT_LIMIT_CHARS = 1 << 20
"""Characters of a text counted token by token; the rest of a longer text is estimated at
the rate of the part counted (counting takes seconds a megabyte, and such a row is far over
any max length)."""
CUT_CHARS_PER_TOKEN = 8
"""Characters per kept token in the first cut of a long row (English text averages ~4)."""
CUT_MARGIN = 16
"""Tokens past ``max_length`` a cut must hold, so that a token cut in two is never kept."""
CUT_TEXT_CHARS = 4096
"""Characters of the text beyond ``max_length`` kept in :attr:`Rendered.cut_text`."""

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


@dataclass
class Rendered:
    """A row exactly as the model sees it, with which tokens are trained."""

    line: int
    input_ids: list[int]
    labels: list[int]
    """``input_ids`` with -100 on masked tokens (not shifted; the model shifts)."""
    text: str
    """The templated text of the kept tokens."""
    spans: list[tuple[int, int, bool]]
    """``(start, end, trained)`` character runs of ``text``, for highlighting."""
    offsets: list[tuple[int, int]] | None
    """Character span of each token in ``text``; ``None`` for tokenizers without offsets."""
    full_tokens: int
    """Tokens before truncation (past :data:`COUNT_LIMIT_CHARS` characters, estimated)."""
    max_length: int
    """The token budget the row was cut to."""
    eos_trained: bool
    """The last trained token (ignoring whitespace) is the EOS / end-of-turn token."""
    template_note: str | None = None
    """Set when the tokenizer has no chat template and a fallback ChatML template was used."""
    notes: list[str] = field(default_factory=list)
    """Problems met rendering this row, e.g. an assistant turn the template dropped."""
    chunked: bool = False
    """A text row kept whole, to be trained as chunks of ``max_length`` (data.text_chunking)."""
    cut_text: str = ""
    """The templated text cut off at ``max_length`` (its first :data:`CUT_TEXT_CHARS`
    characters; empty when nothing was cut or the tokenizer gives no offsets)."""

    @property
    def num_tokens(self) -> int:
        """Tokens kept (at most ``max_length``)."""
        return len(self.input_ids)

    @property
    def truncated(self) -> bool:
        """Whether tokens were cut off at ``max_length``."""
        return self.full_tokens > len(self.input_ids)

    @property
    def tokens_lost(self) -> int:
        """Tokens cut off at ``max_length``."""
        return self.full_tokens - len(self.input_ids)

    @property
    def trained(self) -> list[bool]:
        """Per token: does it count in the loss."""
        return [label != -100 for label in self.labels]

    @property
    def num_trained(self) -> int:
        """Tokens that count in the loss."""
        return sum(label != -100 for label in self.labels)

    def segments(self) -> list[tuple[str, bool]]:
        """``(text, trained)`` runs covering ``text`` in order."""
        return [(self.text[a:b], trained) for a, b, trained in self.spans]

    def to_training_row(self) -> dict[str, list[int]]:
        """The row for ``SFTTrainer``: plain ``input_ids`` and ``labels`` lists."""
        return {"input_ids": list(self.input_ids), "labels": list(self.labels)}

    def to_training_rows(self) -> list[dict[str, list[int]]]:
        """The rows for ``SFTTrainer``: one, or one per ``max_length`` chunk of a chunked row."""
        if not self.chunked:
            return [self.to_training_row()]
        n = self.max_length
        return [{"input_ids": self.input_ids[i:i + n], "labels": self.labels[i:i + n]}
                for i in range(0, len(self.input_ids), n)]

    def lengths(self) -> list[int]:
        """Token counts of the training rows this row becomes, before truncation."""
        if not self.chunked:
            return [self.full_tokens]
        return [len(row["input_ids"]) for row in self.to_training_rows()]


class RenderError(DataError):
    """A row that cannot be rendered as training needs it: the chat template rejected it, or
    its content holds a control token. ``field`` names the part of the row."""

    def __init__(self, message: str, fix: str, line: int | None, field_name: str) -> None:
        super().__init__(message, fix, "", line)
        self.message = message
        self.field = field_name


@dataclass
class _Template:
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

_TEMPLATES: "weakref.WeakKeyDictionary[Any, dict[tuple, _Template]]" = weakref.WeakKeyDictionary()
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


def _template_for(tokenizer: Any, options: RenderOptions | None = None) -> _Template:
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
    info = _Template(tokenizer, template, note, tuple(sorted(known, key=len, reverse=True)),
                     end_ids, bool(getattr(tokenizer, "is_fast", False)), name, tools_native,
                     thinking is not None and "tunetop_probe_thinking" in thinking,
                     _template_system(tokenizer, template), system,
                     _control_tokens(tokenizer, template, known))
    if isinstance(key[0], (str, type(None))):
        cached[key] = info
    return info


def _check_content(info: _Template, example: Example) -> None:
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
    return _template_for(tokenizer, options).info


def render_generation_prompt(tokenizer: Any, messages: list[dict[str, Any]],
                             options: RenderOptions | None = None) -> str:
    """A conversation as training renders it (the template and ``data.default_system_prompt``
    of ``options``), ending with the assistant header: the prompt a chat reply continues.

    Raises :class:`DataError` when the template rejects the conversation.
    """
    info = _template_for(tokenizer, options)
    turns = [dict(m) for m in messages]
    if info.system is not None and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": info.system})
    return _apply(info, turns, 0, generation_prompt=True)


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


def _prepare(info: _Template, example: Example) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The row's turns as the template gets them, and the extra ``apply_chat_template``
    arguments (``tools``): the system prompt of ``data.default_system_prompt``, then tool
    turns and reasoning natively or through the fallbacks."""
    messages = [dict(m) for m in example.messages or ()]
    if info.system is not None and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": info.system})
    uses_tools = bool(example.tools) or any(m["role"] == "tool" or m.get("tool_calls")
                                            for m in messages)
    kwargs: dict[str, Any] = {}
    if uses_tools and info.tools_native:
        if example.tools:
            kwargs["tools"] = example.tools
    elif uses_tools:
        messages = fallback_tool_messages(messages, example.tools, info.template_system)
    if not info.reasoning_native:
        for m in messages:
            thinking = m.pop("reasoning_content", None)
            if thinking:
                m["content"] = f"<think>\n{thinking}\n</think>\n\n{m['content']}"
    return messages, kwargs


def _apply(info: _Template, messages: list[dict[str, Any]], line: int,
           generation_prompt: bool = False, extra: Mapping[str, Any] | None = None) -> str:
    clean = [{k: v for k, v in m.items() if k != "train"} for m in messages]
    try:
        return info.tokenizer.apply_chat_template(
            clean, tokenize=False, add_generation_prompt=generation_prompt,
            chat_template=info.template, **(extra or {}))
    except Exception as exc:  # a Jinja template can raise anything (raise_exception, KeyError)
        raise RenderError(f"The model's chat template rejected the row from line {line}: {exc}",
                          "Reshape the conversation as the model expects (some templates reject "
                          "system turns), or choose another model or data.chat_template.",
                          line, "template") from None


def _assistant_spans(info: _Template, messages: list[dict[str, Any]], line: int,
                     extra: Mapping[str, Any] | None = None,
                     ) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]], list[str]]:
    """The templated text, the character spans of trained assistant turns (content + end
    token), those of masked ones (weight 0), and notes.

    Each assistant turn is located by rendering the conversation up to it: the prompt with the
    generation header marks where the answer starts, the prefix including the turn where it
    ends. A turn the template renders beyond its text (tool calls, reasoning) is the whole
    stretch between the two; other turns are found by their text in it. Templates that
    re-render earlier turns fall back to searching forward for the content.
    """
    full = _apply(info, messages, line, extra=extra)
    spans: list[tuple[int, int]] = []
    masked: list[tuple[int, int]] = []
    notes: list[str] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        lo, hi = cursor, len(full)
        exact_hi = False
        head = _apply(info, messages[:i], line, generation_prompt=True, extra=extra) if i else ""
        if full.startswith(head) and len(head) >= lo:
            lo = len(head)
        turn = _apply(info, messages[: i + 1], line, extra=extra)
        if full.startswith(turn) and len(turn) > lo:
            hi, exact_hi = len(turn), True
        content = message["content"]
        if message.get("tool_calls") or message.get("reasoning_content") or not content.strip():
            # the turn is more than its text: all of it, from where it parts from the prompt
            start = max(lo, len(os.path.commonprefix([head, full])))
            if exact_hi:
                end = start + len(full[start:hi].rstrip())
            else:  # to the end-of-turn token
                ends = [(at, token) for token in info.end_strings
                        if (at := full.find(token, start)) >= 0]
                if not ends:
                    notes.append(f"Assistant turn {i + 1} has no end in the templated text; "
                                 "it is not trained.")
                    continue
                at, token = min(ends)
                end = at + len(token)
        else:
            start = full.find(content, lo, hi) if content else -1
            if start < 0 and content.strip():
                content = content.strip()
                start = full.find(content, lo, hi)
            if start < 0:
                notes.append(f"Assistant turn {i + 1} was not found in the templated text; it "
                             "is not trained.")
                continue
            end = start + len(content)
            gap = full[end:hi]
            after = end + len(gap) - len(gap.lstrip(" \n"))  # Llama 2 puts a space before </s>
            for token in info.end_strings:
                if full.startswith(token, after):
                    end = after + len(token)
                    break
        (spans if message.get("train", True) else masked).append((start, end))
        cursor = end
    return full, spans, masked, notes


def _mark(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Per token, whether its characters overlap a trained span (both lists are in order)."""
    flags = []
    k = 0
    for s, e in offsets:
        while k < len(spans) and spans[k][1] <= s:
            k += 1
        inside = k < len(spans) and (s < spans[k][1] and max(e, s + 1) > spans[k][0])
        flags.append(inside)
    return flags


def _split_point(text: str, at: int, start: int = 0) -> int:
    """Where to cut ``text`` near ``at`` (after ``start``): before a space between two words
    when one is close (byte-level BPE starts a word's token with its space, so both sides
    tokenize as in the whole text), else at ``at``."""
    if at >= len(text):
        return len(text)
    low = max(at - 4096, start + 1)
    space = text.rfind(" ", low, at)
    while space > 0 and (text[space - 1].isspace() or text[space + 1:space + 2].isspace()):
        space = text.rfind(" ", low, space)
    return space if space > 0 else at


def count_tokens(tokenizer: Any, text: str, add_special_tokens: bool) -> int:
    """Tokens in ``text``, counted without offsets; a text over :data:`LONG_TEXT_CHARS` is
    counted a piece at a time (cut by :func:`_split_point`), so memory stays bounded however
    long the row, and past :data:`COUNT_LIMIT_CHARS` the rest is estimated at the rate
    counted so far, so time does too. Every caller counts long rows this way, so their
    figures agree."""
    if len(text) <= LONG_TEXT_CHARS:
        return len(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    total = start = 0
    while start < len(text):
        if start >= COUNT_LIMIT_CHARS:
            return total + round((len(text) - start) * total / start)
        end = _split_point(text, start + LONG_TEXT_CHARS, start)
        total += len(tokenizer(text[start:end], add_special_tokens=add_special_tokens)["input_ids"])
        add_special_tokens, start = False, end
    return total


def _tokenize(info: _Template, text: str, special: bool
              ) -> tuple[list[int], list[tuple[int, int]] | None]:
    """``text``'s token ids, and their character offsets when the tokenizer gives them."""
    if not info.offsets:
        return list(info.tokenizer(text, add_special_tokens=special)["input_ids"]), None
    enc = info.tokenizer(text, return_offsets_mapping=True, add_special_tokens=special)
    return list(enc["input_ids"]), [(int(s), int(e)) for s, e in enc["offset_mapping"]]


def _encode(info: _Template, text: str, max_length: int | None, special: bool
            ) -> tuple[str, list[int], list[tuple[int, int]] | None, int]:
    """Tokenize the head of ``text`` that training keeps: ``(head, ids, offsets, full)``.

    A short text is tokenized whole, and so is any text when ``max_length`` is ``None`` (a
    text row trained in chunks keeps every token). A long one is cut first, at
    :data:`CUT_CHARS_PER_TOKEN` characters per kept token, then at twice as many until a cut
    holds ``max_length`` plus :data:`CUT_MARGIN` tokens and the next longer cut keeps the same
    ``max_length`` tokens; ``full``, the length of the whole text, is then counted by
    :func:`count_tokens`.
    """
    tok = info.tokenizer
    if max_length is None:
        ids, offsets = _tokenize(info, text, special)
        return text, ids, offsets, len(ids)
    limit = max(max_length * CUT_CHARS_PER_TOKEN, 4096)
    agreed: list[int] | None = None
    while True:
        head = text[:_split_point(text, limit)]
        ids, offsets = _tokenize(info, head, special)
        if len(head) == len(text):
            full = len(ids) if len(text) <= LONG_TEXT_CHARS else count_tokens(tok, text, special)
            return head, ids, offsets, full
        if len(ids) > max_length + CUT_MARGIN:
            if agreed == ids[:max_length]:
                return head, ids, offsets, count_tokens(tok, text, special)
            agreed = ids[:max_length]
        limit *= 2


def _render(info: _Template, example: Example, max_length: int,
            assistant_only_loss: bool, chunking: bool = False) -> Rendered:
    tok = info.tokenizer
    notes: list[str] = []
    _check_content(info, example)
    if example.messages is None:
        text = example.text or ""
        if tok.eos_token and not text.endswith(tok.eos_token):
            text += tok.eos_token
        spans = [(0, len(text))]
        special = True
    else:
        messages, extra = _prepare(info, example)
        text, spans, masked, notes = _assistant_spans(info, messages, example.line, extra)
        if not assistant_only_loss:  # every token but the turns of weight 0
            spans, start = [], 0
            for a, b in masked:
                if a > start:
                    spans.append((start, a))
                start = b
            if start < len(text):
                spans.append((start, len(text)))
        special = False
    whole = text
    keep_whole = chunking and example.messages is None  # chunks train every token
    text, ids, offsets, full_tokens = _encode(info, text, None if keep_whole else max_length,
                                              special)
    if offsets is not None:
        flags = _mark(offsets, spans)
    else:
        flags = [False] * len(ids)
        for a, b in spans:
            a, b = min(a, len(text)), min(b, len(text))
            first = len(tok(text[:a], add_special_tokens=special)["input_ids"]) if a else 0
            last = len(tok(text[:b], add_special_tokens=special)["input_ids"])
            flags[first:last] = [True] * (last - first)
    chunked = keep_whole and full_tokens > max_length
    if not chunked:
        ids, flags = ids[:max_length], flags[:max_length]
    cut_text = ""
    if offsets is not None:
        offsets = offsets[: len(ids)]
        if full_tokens > len(ids):
            end = offsets[-1][1]
            text, cut_text = whole[:end], whole[end:end + CUT_TEXT_CHARS]
        token_texts = [text[s:e] for s, e in offsets]
        starts = [s for s, _ in offsets]
    else:
        token_texts = [tok.decode([t]) for t in ids]
        text = "".join(token_texts)
        starts = list(itertools.accumulate((len(t) for t in token_texts[:-1]), initial=0))
    return Rendered(
        line=example.line, input_ids=ids,
        labels=[t if f else -100 for t, f in zip(ids, flags)], text=text,
        spans=_runs(starts, flags, len(text)), offsets=offsets, full_tokens=full_tokens,
        max_length=max_length,
        eos_trained=_ends_with_eos(ids, flags, token_texts, info.end_ids),
        template_note=info.note if example.messages is not None else None, notes=notes,
        chunked=chunked, cut_text=cut_text,
    )


def _runs(starts: list[int], flags: list[bool], length: int) -> list[tuple[int, int, bool]]:
    """Merge per-token flags into ``(start, end, flag)`` character runs covering the text."""
    runs: list[tuple[int, int, bool]] = []
    for i, flag in enumerate(flags):
        if i and flag == flags[i - 1]:
            continue
        start = starts[i] if i else 0
        if runs:
            runs[-1] = (runs[-1][0], start, runs[-1][2])
        runs.append((start, length, flag))
    return runs


def _ends_with_eos(ids: list[int], flags: list[bool], token_texts: list[str],
                   end_ids: frozenset[int]) -> bool:
    """Whether the last trained token, skipping whitespace (ChatML's newline), ends a turn."""
    for token, flag, token_text in zip(reversed(ids), reversed(flags), reversed(token_texts)):
        if flag and (token in end_ids or token_text.strip()):
            return token in end_ids
    return False


def _as_example(example: Example | Mapping[str, Any]) -> Example:
    if isinstance(example, Example):
        return example
    return Example(int(example.get("line", 0)), example.get("messages"), example.get("text"),
                   example.get("tools"))


def render_example(tokenizer: Any, example: Example | Mapping[str, Any], max_length: int,
                   assistant_only_loss: bool = True,
                   options: RenderOptions | None = None) -> Rendered:
    """Render one example with the chat template and build its loss mask.

    Assistant turns (their content, tool calls and the end-of-turn token after it) are
    trained, unless their weight is 0; with ``assistant_only_loss=False`` every token but those
    of weight-0 turns is. Text rows get EOS appended and are trained on every token. Rows longer
    than ``max_length`` tokens are cut at the end (text rows with ``options.text_chunking``
    are kept whole, see :meth:`Rendered.to_training_rows`). ``example`` may be an
    :class:`Example` or a mapping with ``messages`` or ``text``. A row the chat template
    rejects, or whose content holds a control token, raises :class:`RenderError` (a
    :class:`DataError`).
    """
    options = options or RenderOptions()
    return _render(_template_for(tokenizer, options), _as_example(example), max_length,
                   assistant_only_loss, options.text_chunking)


def render_examples(tokenizer: Any, examples: Iterable[Example], max_length: int,
                    assistant_only_loss: bool = True,
                    options: RenderOptions | None = None) -> list[Rendered]:
    """:func:`render_example` over many rows, inspecting the tokenizer once."""
    options = options or RenderOptions()
    info = _template_for(tokenizer, options)
    return [_render(info, e, max_length, assistant_only_loss, options.text_chunking)
            for e in examples]


def tokenize_for_training(tokenizer: Any, examples: Iterable[Example], max_length: int,
                          assistant_only_loss: bool = True,
                          options: RenderOptions | None = None) -> list[dict[str, list[int]]]:
    """Pre-tokenized rows for ``SFTTrainer``: ``{"input_ids": [...], "labels": [...]}`` each.

    One output row per example, in order (or one per chunk with ``options.text_chunking``).
    Pass the result as a ``datasets.Dataset``; TRL uses a ``labels`` column as it is, so set
    its own ``assistant_only_loss`` off. Training itself uses
    :func:`core.data.training_outcome`, which also drops rows with no trained token.
    """
    return [row for r in render_examples(tokenizer, examples, max_length, assistant_only_loss,
                                         options)
            for row in r.to_training_rows()]
