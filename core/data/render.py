"""Rendering with the loss mask: the exact tokens the model sees and which of them are trained.

:func:`render_example` templates a row with the chat template (the tokenizer's, or the one
:class:`RenderOptions` names; ChatML when there is none), tokenizes it and marks the assistant
turns, with their end-of-turn token, as trained; tool results, prompts and turns of weight 0
are masked. :func:`tokenize_for_training` gives TRL's ``SFTTrainer`` the same rows as plain
``input_ids``/``labels`` lists.

Tool calls, tool results and the tools list go to the template as ``tool_calls``, role
``tool`` and ``tools=`` when it renders them (probed once per tokenizer in
:mod:`core.data.template_probe`). When it does not, the documented fallback
(:func:`~core.data.template_probe.fallback_tool_messages`) writes them as text the model can
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
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.data.normalise import Example
from core.data.template_probe import (
    RenderError,
    RenderOptions,
    Template,
    check_content,
    fallback_tool_messages,
    template_for,
)

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


def render_generation_prompt(tokenizer: Any, messages: list[dict[str, Any]],
                             options: RenderOptions | None = None) -> str:
    """A conversation as training renders it (the template and ``data.default_system_prompt``
    of ``options``), ending with the assistant header: the prompt a chat reply continues.

    Raises :class:`DataError` when the template rejects the conversation.
    """
    info = template_for(tokenizer, options)
    turns = [dict(m) for m in messages]
    if info.system is not None and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": info.system})
    return _apply(info, turns, 0, generation_prompt=True)


def _prepare(info: Template, example: Example) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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


def _apply(info: Template, messages: list[dict[str, Any]], line: int,
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


def _assistant_spans(info: Template, messages: list[dict[str, Any]], line: int,
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


def _tokenize(info: Template, text: str, special: bool
              ) -> tuple[list[int], list[tuple[int, int]] | None]:
    """``text``'s token ids, and their character offsets when the tokenizer gives them."""
    if not info.offsets:
        return list(info.tokenizer(text, add_special_tokens=special)["input_ids"]), None
    enc = info.tokenizer(text, return_offsets_mapping=True, add_special_tokens=special)
    return list(enc["input_ids"]), [(int(s), int(e)) for s, e in enc["offset_mapping"]]


def _encode(info: Template, text: str, max_length: int | None, special: bool
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


def _render(info: Template, example: Example, max_length: int,
            assistant_only_loss: bool, chunking: bool = False) -> Rendered:
    tok = info.tokenizer
    notes: list[str] = []
    check_content(info, example)
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
    return _render(template_for(tokenizer, options), _as_example(example), max_length,
                   assistant_only_loss, options.text_chunking)


def render_examples(tokenizer: Any, examples: Iterable[Example], max_length: int,
                    assistant_only_loss: bool = True,
                    options: RenderOptions | None = None) -> list[Rendered]:
    """:func:`render_example` over many rows, inspecting the tokenizer once."""
    options = options or RenderOptions()
    info = template_for(tokenizer, options)
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
