"""Prompt-only rows: questions to ask a model, with no answer to train on.

The general probe set (``eval.general_prompts``) and review prompts may hold no answers, which
training data must have. A prompt row is a chat (``messages`` or ShareGPT ``conversations``)
ending in a user turn (a final assistant turn is dropped), or one text field: ``prompt``,
``question``, or ``instruction`` with an optional ``input``. Files are read as training data
is (:func:`core.data.open_dataset`: JSONL, JSON, CSV, Parquet...); a row that is not a prompt
becomes a :class:`Problem` naming its line, never a silent drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.data.files import open_dataset
from core.data.normalise import ROLE_ALIASES
from core.data.problems import DataError, Problem

TEXT_FIELDS = ("prompt", "question", "instruction")
"""Fields that hold a prompt as one text, in the order they are looked for."""
PROMPT_FIX = ("Give a 'messages' list ending in a user turn, or a 'prompt' text, e.g. "
              '{"messages": [{"role": "user", "content": "Name three colours."}]}.')


def prompt_messages(data: Any) -> tuple[list[dict[str, str]] | None, str]:
    """The prompt turns of one row (system and user/assistant turns ending in a user turn),
    or ``None`` and what is wrong."""
    if not isinstance(data, dict):
        return None, f"the row is a {type(data).__name__}, not an object."
    turns = data.get("messages", data.get("conversations"))
    if turns is not None:
        if not isinstance(turns, list) or not turns:
            return None, "'messages' must be a non-empty list of turns."
        messages = []
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                return None, f"turn {i} is not an object with role and content."
            role = ROLE_ALIASES.get(str(turn.get("role", turn.get("from", ""))).lower())
            content = turn.get("content", turn.get("value"))
            if role is None or not isinstance(content, str):
                return None, (f"turn {i} needs a role (system, user or assistant) and a text "
                              "content.")
            messages.append({"role": role, "content": content})
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()  # an answer, if the row has one, is not part of the prompt
        if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
            return None, "the conversation does not end in a user turn with text."
        return messages, ""
    for name in TEXT_FIELDS:
        text = data.get(name)
        if isinstance(text, str) and text.strip():
            extra = data.get("input") if name == "instruction" else None
            if isinstance(extra, str) and extra.strip():
                text = f"{text}\n\n{extra}"
            return [{"role": "user", "content": text}], ""
    return None, "no prompt: it has neither 'messages' nor a prompt text field."


def read_prompts(source: str | Path) -> tuple[list[list[dict[str, str]]], list[Problem]]:
    """Every prompt of ``source`` (a file or ``sample:<name>``) in file order, and a problem for
    each row that is not one. Raises :class:`DataError` for a file that cannot be read or holds
    no prompt at all."""
    dataset = open_dataset(source)
    prompts: list[list[dict[str, str]]] = []
    problems: list[Problem] = []
    for raw in dataset.iter_rows():
        if raw.problem is not None:
            problems.append(raw.problem)
            continue
        messages, why = prompt_messages(raw.data)
        if messages is None:
            problems.append(Problem(dataset.source, raw.line, "prompt", why, PROMPT_FIX))
        else:
            prompts.append(messages)
    if not prompts:
        first = f" First problem: {problems[0].headline}" if problems else ""
        raise DataError(f"{dataset.source} holds no prompt.{first}", PROMPT_FIX, dataset.source)
    return prompts, problems
