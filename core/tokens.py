"""Token counts for whole datasets, fast enough for 100,000 rows in seconds.

:func:`core.data.render_example` is exact but costs several chat-template calls and an offsets
mapping per row: right for one row on screen, too slow for statistics over a big file. Here
each row is templated once (the same template and special-token rules ``render_example`` uses,
so the counts equal :attr:`core.data.Rendered.full_tokens`) and the tokenizer's batch call
counts many rows at once, without the offsets that only highlighting needs (a quarter of the
tokenizer's time). :func:`iter_token_counts` runs batches in a few threads, so templating
(Python) overlaps with tokenizing (native code that releases the GIL) and every core is kept
busy. :func:`core.data.length_stats` summarises the counts.

Nothing here imports Textual.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from core.data import DataError, Example
from core.data.render import LONG_TEXT_CHARS, _apply, _prepare, count_tokens
from core.data.template_probe import RenderOptions, check_content, template_for

COUNT_BATCH = 1000
"""Rows templated and tokenized per batch call: big enough to amortise the call, small enough
for frequent progress."""
SELF_CHECK_ROWS = 8
"""Rows of the first batch also counted by the tokenizer's own call, the one training makes:
if the direct Rust call counts any of them differently, it is not used again."""


class TokenCounter:
    """Counts the tokens of examples as :func:`core.data.render_example` would, before truncation.

    Chat rows are prepared and templated as ``render_example`` does with the same
    :class:`~core.data.RenderOptions` (template, system prompt, tool fallback) and tokenized
    without added special tokens; text rows get EOS appended and are tokenized with
    them, exactly as ``render_example`` does.
    """

    def __init__(self, tokenizer: Any, options: RenderOptions | None = None) -> None:
        self.tokenizer = tokenizer
        self._info = template_for(tokenizer, options)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        plain = (backend is not None and getattr(tokenizer, "is_fast", False)
                 and backend.truncation is None and backend.padding is None)
        self._backend = backend if plain else None
        """The Rust tokenizer, called directly when it neither truncates nor pads."""
        self._checked: set[bool] = set()
        """``add_special_tokens`` values for which the direct call was compared with the
        tokenizer's own on real rows."""

    def texts(self, examples: Sequence[Example]) -> list[tuple[str, bool] | None]:
        """Per example, ``(text, add_special_tokens)`` to tokenize; ``None`` if rendering
        refuses the row (the template rejects it, or its content holds a control token:
        render it alone to see why)."""
        out: list[tuple[str, bool] | None] = [None] * len(examples)
        refused = set()
        for i, example in enumerate(examples):
            try:
                check_content(self._info, example)
            except DataError:
                refused.add(i)
        chats = [i for i, e in enumerate(examples) if e.messages is not None and i not in refused]
        eos = self.tokenizer.eos_token or ""
        for i, example in enumerate(examples):
            if i in refused:
                continue
            if example.messages is None:
                text = example.text or ""
                out[i] = (text if text.endswith(eos) else text + eos, True)
        if not chats:
            return out
        prepared = [_prepare(self._info, examples[i]) for i in chats]
        # rows with tools= for the template are templated alone; the rest in one call
        plain = [k for k, (_, extra) in enumerate(prepared) if not extra]
        rendered: list[str | None] = [None] * len(chats)
        try:
            texts = self.tokenizer.apply_chat_template(
                [[{k: v for k, v in m.items() if k != "train"} for m in prepared[k][0]]
                 for k in plain], tokenize=False, chat_template=self._info.template
            ) if plain else []
            for k, text in zip(plain, texts):
                rendered[k] = text
            done = set(plain)
            alone = [k for k in range(len(chats)) if k not in done]
        except Exception:  # a Jinja template can raise anything; find the rows one at a time
            alone = list(range(len(chats)))
        for k in alone:
            try:
                rendered[k] = _apply(self._info, prepared[k][0], examples[chats[k]].line,
                                     extra=prepared[k][1])
            except DataError:
                rendered[k] = None
        for i, text in zip(chats, rendered):
            out[i] = None if text is None else (text, False)
        return out

    def encode(self, texts: Sequence[tuple[str, bool] | None]) -> list[int | None]:
        """Token counts of :meth:`texts` output, ``None`` kept where the template failed."""
        counts: list[int | None] = [None] * len(texts)
        for i, t in enumerate(texts):
            if t is not None and len(t[0]) > LONG_TEXT_CHARS:  # bounded memory, as rendering
                counts[i] = count_tokens(self.tokenizer, *t)
        for special in (False, True):
            index = [i for i, t in enumerate(texts) if t is not None and t[1] is special
                     and counts[i] is None]
            if not index:
                continue
            batch = [texts[i][0] for i in index]  # type: ignore[index]
            for i, n in zip(index, self._lengths(batch, special)):
                counts[i] = n
        return counts

    def _lengths(self, batch: list[str], special: bool) -> list[int]:
        """Token counts of ``batch``: straight from the Rust tokenizer when it may be called
        directly, else through the tokenizer's own call (as training tokenizes)."""
        backend = self._backend
        if backend is None:
            return self._tokenizer_lengths(batch, special)
        # encode_batch_fast (tokenizers >= 0.21) skips the offsets: same ids, less work
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        lengths = [len(e) for e in encode(batch, add_special_tokens=special)]
        if special not in self._checked:
            self._checked.add(special)
            probe = batch[:SELF_CHECK_ROWS]
            if self._tokenizer_lengths(probe, special) != lengths[:len(probe)]:
                self._backend = None  # the tokenizer's call adds something: use it
                return self._tokenizer_lengths(batch, special)
        return lengths

    def _tokenizer_lengths(self, batch: list[str], special: bool) -> list[int]:
        return [len(ids) for ids in self.tokenizer(
            batch, add_special_tokens=special, return_attention_mask=False)["input_ids"]]

    def count(self, examples: Sequence[Example]) -> list[int | None]:
        """Token counts of ``examples`` (``None`` where the chat template rejected the row).

        Safe to call from several threads at once: nothing here changes the tokenizer.
        """
        return self.encode(self.texts(examples))


def _lower_priority(nice: int) -> None:
    """Thread initializer: lower this thread's CPU priority by ``nice`` (Linux sets it per
    thread; elsewhere, or if refused, the thread keeps its priority)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass


def iter_token_counts(tokenizer: Any, batches: Iterable[Sequence[Example]],
                      workers: int | None = None, nice: int = 0,
                      options: RenderOptions | None = None) -> Iterator[list[int | None]]:
    """Token counts per batch, in order, counted by a pool of threads.

    Each thread templates a batch (Python, holding the GIL) then tokenizes it (native code that
    releases the GIL), so ``workers`` threads (default: one per core, at most 4) keep the
    cores busy. ``nice`` > 0 runs them at a lower CPU priority, so that an interactive caller
    (the UI thread) is scheduled first. ``options`` are the rendering options (template,
    system prompt) the counts follow. Closing the iterator early waits for the batches in
    flight (at most ``workers`` + 1).
    """
    counter = TokenCounter(tokenizer, options)
    workers = workers or min(os.cpu_count() or 1, 4)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokens",
                            initializer=_lower_priority if nice > 0 else None,
                            initargs=(nice,) if nice > 0 else ()) as pool:
        pending: deque[Future[list[int | None]]] = deque()
        for batch in batches:
            pending.append(pool.submit(counter.count, batch))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
