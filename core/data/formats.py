"""Detecting a dataset's format from its first rows.

Formats are told apart by their fields: ``chosen``/``rejected`` (a preference dataset),
``messages`` (OpenAI chat), ``conversations`` (ShareGPT), ``prompt``/``completion``,
``instruction``/``output`` (Alpaca) and ``text``.
Detection looks at the first :data:`DETECT_ROWS` rows only, so huge files open fast; rows
of another format are reported when they are normalised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.data.problems import DataError

DETECT_ROWS = 100
"""Rows read to detect the format; detection never reads further, so huge files open fast."""

FORMAT_TESTS = (
    ("preference", "'chosen' and 'rejected'", lambda r: "chosen" in r and "rejected" in r),
    ("messages", "a 'messages' list", lambda r: _is_list_like(r.get("messages"))),
    ("sharegpt", "a 'conversations' list", lambda r: _is_list_like(r.get("conversations"))),
    ("prompt_completion", "'prompt' and 'completion'",
     lambda r: "prompt" in r and "completion" in r),
    ("alpaca", "'instruction' and 'output'", lambda r: "instruction" in r and "output" in r),
    ("text", "a 'text' string", lambda r: isinstance(r.get("text"), str)),
)
"""``(format, what its rows have, test)`` in order of precedence: a row is of the first format
whose test it passes."""

FIELD_HINTS = {
    "conversation": "conversations", "dialog": "messages", "dialogue": "messages",
    "chat": "messages", "turns": "messages", "question": "prompt", "query": "prompt",
    "answer": "completion", "response": "completion", "target": "completion",
    "content": "text", "document": "text", "body": "text",
}
"""Field names seen in the wild and the name tunetop expects, for "did you mean" fixes."""


def _is_list_like(value: Any) -> bool:
    # CSV cells hold lists as JSON text
    return isinstance(value, list) or (isinstance(value, str) and value.lstrip().startswith("["))


def detect_format(rows: Iterable[Any], source: str = "") -> tuple[str, str]:
    """Pick the format most of ``rows`` follow; returns ``(format, reason)``.

    Only the given rows are looked at (callers pass the first :data:`DETECT_ROWS`). Raises
    :class:`DataError` with renaming hints when no row has a known field.
    """
    counts = dict.fromkeys((name for name, _, _ in FORMAT_TESTS), 0)
    seen = 0
    keys: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        seen += 1
        keys.update(dict.fromkeys(map(str, row)))
        for name, _, test in FORMAT_TESTS:
            if test(row):
                counts[name] += 1
                break
    best = max(counts, key=counts.__getitem__)
    if not seen or not counts[best]:
        hints = [f"'{k}' to '{FIELD_HINTS[k.lower()]}'" for k in keys if k.lower() in FIELD_HINTS]
        missing = [f"'{need}' (format {name} needs {' and '.join(map(repr, pair))})"
                   for name, pair in (("alpaca", ("instruction", "output")),
                                      ("prompt_completion", ("prompt", "completion")))
                   for need in pair if need not in keys and any(k in keys for k in pair)]
        fix = ("Rename " + ", ".join(hints) + ", or set data.format." if hints else
               "Add the missing field " + ", ".join(missing) + ", or set data.format."
               if missing else
               "Use 'messages' (OpenAI chat), 'conversations' (ShareGPT), "
               "'instruction'/'input'/'output' (Alpaca), 'prompt'/'completion' or 'text'.")
        raise DataError(f"{source}: cannot tell the data format: none of the first {seen} rows "
                        f"has a known field (they have {', '.join(keys) or 'no fields'}).",
                        fix, source)
    desc = next(d for name, d, _ in FORMAT_TESTS if name == best)
    reason = f"{best}: {counts[best]} of first {seen} rows have {desc}"
    others = [f"{n} {name}" for name, n in counts.items() if n and name != best]
    if others:
        reason += f" (also {', '.join(others)}; those rows will be reported)"
    return best, reason

