"""Normalising rows: one raw row of a known format to an :class:`Example` and its problems.

Every format becomes chat ``messages`` (system/user/assistant turns) or plain ``text``. A row
with an error becomes ``None`` and the problems say what and where; warnings keep the row.
Nothing here raises for bad data.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from core.config import DATA_FORMATS
from core.data.formats import FIELD_HINTS, FORMAT_TESTS
from core.data.problems import Problem

ROLE_ALIASES = {
    **dict.fromkeys(("system", "developer"), "system"),
    **dict.fromkeys(("user", "human", "prompter"), "user"),
    **dict.fromkeys(
        ("assistant", "gpt", "chatgpt", "gpt-4", "gpt4", "bing", "bard", "model", "bot", "ai",
         "claude", "gemini"),
        "assistant",
    ),
}
"""Role names found in OpenAI, ShareGPT and OASST-style data, lower-cased, to the chat role."""

TOOL_ROLES = ("tool", "function", "function_call", "function_response", "observation", "ipython")
"""Tool-call roles: recognised so the problem can say they are unsupported, not unknown."""


@dataclass
class Example:
    """One normalised row: chat ``messages`` or plain ``text``, and the ``line`` it came from
    (the JSONL line, or the row number in other formats)."""

    line: int
    messages: list[dict[str, str]] | None = None
    """``[{"role": "system"|"user"|"assistant", "content": str}, ...]``."""
    text: str | None = None
    """Plain text, trained on every token."""

    def answers(self) -> list[str]:
        """The assistant turns, or the text for a text row."""
        if self.messages is None:
            return [self.text or ""]
        return [m["content"] for m in self.messages if m["role"] == "assistant"]

    def dedupe_text(self) -> str:
        """The row's words without system turns, which many rows share, for duplicate checks."""
        if self.messages is None:
            return self.text or ""
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages
                         if m["role"] != "system")


class _RowChecker:
    """Collects the problems of one row while it is normalised."""

    def __init__(self, source: str, line: int) -> None:
        self.source = source
        self.line = line
        self.problems: list[Problem] = []

    def error(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix))

    def warn(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix, "warning"))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def require(self, row: dict[str, Any], key: str, fmt: str) -> bool:
        """Report a missing field as a wrong field name, with the closest name present."""
        if key in row:
            return True
        present = [str(k) for k in row]
        other = next((name for name, _, test in FORMAT_TESTS if name != fmt and test(row)), None)
        close = ([k for k in present if FIELD_HINTS.get(k.lower()) == key]
                 or difflib.get_close_matches(key, present, n=1, cutoff=0.6))
        if other:
            fix = (f"Keep one format in a file: convert the row to {fmt}, or move the {other} "
                   "rows to a file of their own.")
        elif close:
            fix = f"Rename '{close[0]}' to '{key}'."
        else:
            fix = f"Give every row a '{key}' field, or set data.format to match the file."
        looks = f"; it is in {other} format" if other else ""
        self.error(key, f"wrong field names: no '{key}' field for format {fmt} "
                        f"(the row has {', '.join(present) or 'no fields'}{looks}).", fix)
        return False

    def string(self, value: Any, name: str, *, optional: bool = False) -> str | None:
        """A non-empty string field, or ``None`` with the problem reported."""
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            kind = type(value).__name__
            got = ("null (no value)" if value is None
                   else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
            self.error(name, f"non-string content: expected text, got {got}.",
                       "Write the content as a JSON string.")
            return None
        if not value.strip() and not optional:
            self.error(name, "empty content.", "Write the text, or remove the row.")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone \ud800-style JSON escape; tokenizers reject it
            self.error(name, f"invalid Unicode: unpaired surrogate {value[exc.start]!r} at "
                             f"character {exc.start}.",
                       "Fix the \\uXXXX escape; surrogates must come in pairs.")
            return None
        return value

    def turns(self, value: Any, name: str) -> list[dict[str, str]] | None:
        """Normalise a list of turns (role/content or ShareGPT from/value)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                self.error(name, "is text that is not a JSON list of turns.",
                           "Store the turns as a JSON list.")
                return None
        if not isinstance(value, list):
            self.error(name, f"must be a list of turns, got {type(value).__name__}.",
                       "Store the turns as a list of {role, content} objects.")
            return None
        if not value:
            self.error(name, "has no turns.", "Add user and assistant turns, or remove the row.")
            return None
        out: list[dict[str, str]] = []
        for i, turn in enumerate(value):
            where = f"{name}[{i}]"
            if not isinstance(turn, dict):
                self.error(where, f"turn is a {type(turn).__name__}, not an object.",
                           "Write each turn as {\"role\": ..., \"content\": ...}.")
                continue
            role_key = "role" if "role" in turn else "from" if "from" in turn else None
            content_key = "content" if "content" in turn else "value" if "value" in turn else None
            if role_key is None or content_key is None:
                self.error(where, f"wrong field names: the turn has "
                                  f"{', '.join(map(str, turn)) or 'no fields'}.",
                           "Name the fields 'role' and 'content' (or ShareGPT 'from' and "
                           "'value').")
                continue
            role = self._role(turn[role_key], f"{where}.{role_key}")
            content = self._content(turn[content_key], f"{where}.{content_key}")
            if role is not None and content is not None:
                out.append({"role": role, "content": content})
        return out if self.ok else None

    def _role(self, value: Any, name: str) -> str | None:
        role = ROLE_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
        if role is None:
            if isinstance(value, str) and value.strip().lower() in TOOL_ROLES:
                fix = "Tool turns are not supported: remove them or fold them into a user turn."
            else:
                fix = "Use system, user or assistant (ShareGPT: system, human, gpt)."
            self.error(name, f"unknown role {value!r}.", fix)
        return role

    def _content(self, value: Any, name: str) -> str | None:
        if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in value
        ):  # OpenAI content parts
            value = "\n".join(p["text"] for p in value)
        return self.string(value, name)

    def order(self, turns: list[dict[str, str]], name: str) -> None:
        """Check the turn sequence: one leading system turn, then user/assistant alternating."""
        roles = [t["role"] for t in turns]
        if all(r == "system" for r in roles):
            self.error(name, "system-only row: it has no user or assistant turn.",
                       "Add the user and assistant turns, or remove the row.")
            return
        if "assistant" not in roles:
            self.error(name, "missing assistant turn: there is nothing to learn from this row.",
                       "Add the assistant's answer, or remove the row.")
            return
        expected = "user"
        for i, role in enumerate(roles):
            if role == "system" and i == 0:
                continue
            if role != expected:
                after = f"after '{roles[i - 1]}'" if i else "first"
                self.error(f"{name}[{i}]",
                           f"roles out of order: turn {i + 1} is '{role}' {after}; turns must "
                           "alternate user, assistant after an optional first system turn.",
                           "Merge or reorder the turns so user and assistant alternate.")
                return
            expected = "assistant" if role == "user" else "user"
        if roles[-1] == "user":
            self.warn(name, "the last turn is a user turn with no answer; it is not trained.",
                      "Add the assistant's answer or remove the last turn.")


def normalise_row(row: Any, format: str, source: str = "", line: int = 0,
                  ) -> tuple[Example | None, list[Problem]]:
    """Turn one raw row of ``format`` into an :class:`Example`.

    Returns ``(None, problems)`` when the row has an error (it must be dropped), else the
    example and any warnings. Never raises for bad data.
    """
    check = _RowChecker(source, line)
    if not isinstance(row, dict):
        check.error("(row)", f"the row is a {type(row).__name__}, not an object with fields.",
                    "Write each row as a JSON object.")
        return None, check.problems
    if None in row:  # csv.DictReader keeps surplus cells under the key None
        check.error("(row)", "the row has more cells than the header.",
                    "Quote cells that contain the delimiter.")
        return None, check.problems
    example = Example(line)
    if format == "text":
        if check.require(row, "text", format):
            example.text = check.string(row["text"], "text")
    elif format in ("messages", "sharegpt"):
        key = "messages" if format == "messages" else "conversations"
        if check.require(row, key, format):
            turns = check.turns(row[key], key)
            if turns is not None:
                check.order(turns, key)
                example.messages = turns
    elif format == "alpaca":
        # "&", not "and", below and for prompt_completion: every missing field is reported
        if check.require(row, "instruction", format) & check.require(row, "output", format):
            instruction = check.string(row["instruction"], "instruction")
            extra = check.string(row.get("input"), "input", optional=True)
            output = check.string(row["output"], "output")
            system = check.string(row.get("system"), "system", optional=True)
            if check.ok:
                prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
                example.messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": output},
                ]
    elif format == "prompt_completion":
        if check.require(row, "prompt", format) & check.require(row, "completion", format):
            turns = (_side(check, row["prompt"], "prompt", "user")
                     + _side(check, row["completion"], "completion", "assistant"))
            if check.ok:
                check.order(turns, "prompt+completion")
                example.messages = turns
    else:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(DATA_FORMATS[1:])}")
    return (example if check.ok else None), check.problems


def _side(check: _RowChecker, value: Any, name: str, role: str) -> list[dict[str, str]]:
    """One side of a prompt/completion row: a string, or a list of turns (TRL conversational)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:  # a CSV cell holding turns as JSON; otherwise it is prose that starts with "["
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(isinstance(t, dict) for t in parsed):
            value = parsed
    if isinstance(value, list):
        return check.turns(value, name) or []
    text = check.string(value, name)
    return [{"role": role, "content": text}] if text is not None else []

