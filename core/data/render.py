"""Rendering with the loss mask: the exact tokens the model sees and which of them are trained.

:func:`render_example` templates a row with the tokenizer's chat template (ChatML when it has
none), tokenizes it and marks the assistant turns, with their end-of-turn token, as trained;
:func:`tokenize_for_training` gives TRL's ``SFTTrainer`` the same rows as plain
``input_ids``/``labels`` lists.

Memory per row is bounded: a long row is cut before it is tokenized with offsets (a few
characters per kept token, more until the cut holds enough tokens and a longer cut keeps the
same ones), and its full length is counted in pieces (:func:`count_tokens`). A row whose
content holds one of the template's control tokens (``<|im_end|>`` in a user turn) is refused
with :class:`RenderError`: the tokenizer would read it as a turn boundary, a forged turn.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.data.normalise import Example
from core.data.problems import DataError

END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<|return|>", "<｜end▁of▁sentence｜>",
)
"""End-of-turn tokens used by common chat templates; those the tokenizer knows end a turn."""

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

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + END + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, used when a tokenizer has no chat template; ``END`` becomes the end-of-turn token."""


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


class RenderError(DataError):
    """A row that cannot be rendered as training needs it: the chat template rejected it, or
    its content holds a control token. ``field`` names the part of the row."""

    def __init__(self, message: str, fix: str, line: int | None, field_name: str) -> None:
        super().__init__(message, fix, "", line)
        self.message = message
        self.field = field_name


@dataclass
class _Template:
    """What rendering needs to know about one tokenizer, computed once per batch."""

    tokenizer: Any
    template: str | None
    note: str | None
    end_strings: tuple[str, ...]
    end_ids: frozenset[int]
    offsets: bool
    control: tuple[str, ...] = ()
    """Special tokens that structure a conversation; content must not hold them."""


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
    if template is not None:
        found |= {"<|im_start|>", "<|im_end|>"}  # the ChatML fallback's markers
    return tuple(sorted((t for t in found if isinstance(t, str) and t.strip()),
                        key=len, reverse=True))


def _template_for(tokenizer: Any) -> _Template:
    def token_id(text: str) -> int | None:
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tokenizer.convert_ids_to_tokens(tid) == text:
            return tid
        return None

    eos = tokenizer.eos_token
    known = [s for s in dict.fromkeys((*END_OF_TURN_TOKENS, eos)) if s and token_id(s) is not None]
    template = note = None
    if not getattr(tokenizer, "chat_template", None):
        end = "<|im_end|>" if "<|im_end|>" in known else (eos or "<|im_end|>")
        template = CHATML_TEMPLATE.replace("END", repr(end))
        note = (f"The tokenizer has no chat template; a simple ChatML template ending turns "
                f"with {end} was used.")
    end_ids = frozenset(t for s in known if (t := token_id(s)) is not None)
    return _Template(tokenizer, template, note, tuple(sorted(known, key=len, reverse=True)),
                     end_ids, bool(getattr(tokenizer, "is_fast", False)),
                     _control_tokens(tokenizer, template, known))


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
        parts = [(f"messages[{i}].content", f"the {m['role']} turn {i + 1}", m["content"])
                 for i, m in enumerate(example.messages)]
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


def _apply(info: _Template, messages: list[dict[str, str]], line: int,
           generation_prompt: bool = False) -> str:
    try:
        return info.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt,
            chat_template=info.template)
    except Exception as exc:  # a Jinja template can raise anything (raise_exception, KeyError)
        raise RenderError(f"The model's chat template rejected the row from line {line}: {exc}",
                          "Reshape the conversation as the model expects (some templates reject "
                          "system turns), or choose another model.", line, "template") from None


def _assistant_spans(info: _Template, messages: list[dict[str, str]], line: int,
                     ) -> tuple[str, list[tuple[int, int]], list[str]]:
    """The templated text and the character spans of assistant turns (content + end token).

    Each assistant turn is located by rendering the conversation up to it: the prompt with the
    generation header marks where the answer starts, the prefix including the turn where it
    ends. Templates that re-render earlier turns fall back to searching forward for the content.
    """
    full = _apply(info, messages, line)
    spans: list[tuple[int, int]] = []
    notes: list[str] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        lo, hi = cursor, len(full)
        if i:
            head = _apply(info, messages[:i], line, generation_prompt=True)
            if full.startswith(head):
                lo = max(lo, len(head))
        turn = _apply(info, messages[: i + 1], line)
        if full.startswith(turn) and len(turn) > lo:
            hi = len(turn)
        content = message["content"]
        start = full.find(content, lo, hi)
        if start < 0 and content.strip():
            content = content.strip()
            start = full.find(content, lo, hi)
        if start < 0:
            notes.append(f"Assistant turn {i + 1} was not found in the templated text; it is "
                         "not trained.")
            continue
        end = start + len(content)
        gap = full[end:hi]
        after = end + len(gap) - len(gap.lstrip(" \n"))  # Llama 2 puts a space before </s>
        for token in info.end_strings:
            if full.startswith(token, after):
                end = after + len(token)
                break
        spans.append((start, end))
        cursor = end
    return full, spans, notes


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


def _encode(info: _Template, text: str, max_length: int, special: bool
            ) -> tuple[str, list[int], list[tuple[int, int]] | None, int]:
    """Tokenize the head of ``text`` that training keeps: ``(head, ids, offsets, full)``.

    A short text is tokenized whole. A long one is cut first, at :data:`CUT_CHARS_PER_TOKEN`
    characters per kept token, then at twice as many until a cut holds ``max_length`` plus
    :data:`CUT_MARGIN` tokens and the next longer cut keeps the same ``max_length`` tokens;
    ``full``, the length of the whole text, is then counted by :func:`count_tokens`.
    """
    tok = info.tokenizer
    kwargs: dict[str, Any] = {"add_special_tokens": special}
    limit = max(max_length * CUT_CHARS_PER_TOKEN, 4096)
    agreed: list[int] | None = None
    while True:
        head = text[:_split_point(text, limit)]
        if info.offsets:
            enc = tok(head, return_offsets_mapping=True, **kwargs)
            offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
        else:
            enc, offsets = tok(head, **kwargs), None
        ids = list(enc["input_ids"])
        if len(head) == len(text):
            full = len(ids) if len(text) <= LONG_TEXT_CHARS else count_tokens(tok, text, special)
            return head, ids, offsets, full
        if len(ids) > max_length + CUT_MARGIN:
            if agreed == ids[:max_length]:
                return head, ids, offsets, count_tokens(tok, text, special)
            agreed = ids[:max_length]
        limit *= 2


def _render(info: _Template, example: Example, max_length: int,
            assistant_only_loss: bool) -> Rendered:
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
        text, spans, notes = _assistant_spans(info, example.messages, example.line)
        if not assistant_only_loss:
            spans = [(0, len(text))]
        special = False
    whole = text
    text, ids, offsets, full_tokens = _encode(info, text, max_length, special)
    if offsets is not None:
        flags = _mark(offsets, spans)
    else:
        flags = [False] * len(ids)
        for a, b in spans:
            a, b = min(a, len(text)), min(b, len(text))
            first = len(tok(text[:a], add_special_tokens=special)["input_ids"]) if a else 0
            last = len(tok(text[:b], add_special_tokens=special)["input_ids"])
            flags[first:last] = [True] * (last - first)
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
        cut_text=cut_text,
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
    return Example(int(example.get("line", 0)), example.get("messages"), example.get("text"))


def render_example(tokenizer: Any, example: Example | Mapping[str, Any], max_length: int,
                   assistant_only_loss: bool = True) -> Rendered:
    """Render one example with the tokenizer's chat template and build its loss mask.

    Assistant turns (their content and the end-of-turn token after it) are trained; with
    ``assistant_only_loss=False`` every token is. Text rows get EOS appended and are trained on
    every token. Rows longer than ``max_length`` tokens are cut at the end. ``example`` may be an
    :class:`Example` or a mapping with ``messages`` or ``text``. A chat template that rejects the
    row raises :class:`DataError`.
    """
    return _render(_template_for(tokenizer), _as_example(example), max_length,
                   assistant_only_loss)


def render_examples(tokenizer: Any, examples: Iterable[Example], max_length: int,
                    assistant_only_loss: bool = True) -> list[Rendered]:
    """:func:`render_example` over many rows, inspecting the tokenizer once."""
    info = _template_for(tokenizer)
    return [_render(info, e, max_length, assistant_only_loss) for e in examples]


def tokenize_for_training(tokenizer: Any, examples: Iterable[Example], max_length: int,
                          assistant_only_loss: bool = True) -> list[dict[str, list[int]]]:
    """Pre-tokenized rows for ``SFTTrainer``: ``{"input_ids": [...], "labels": [...]}`` each.

    One output row per example, in order. Pass the result as a ``datasets.Dataset``; TRL uses a
    ``labels`` column as it is, so set its own ``assistant_only_loss`` off. Training itself
    uses :func:`core.data.training_outcome`, which also drops rows with no trained token.
    """
    return [r.to_training_row()
            for r in render_examples(tokenizer, examples, max_length, assistant_only_loss)]

