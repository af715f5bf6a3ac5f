"""Where the prompts of a review set come from: a dataset file, a bundled sample, or the
validation split of a run.

Each row must be a chat ending in a user turn, or in the assistant answer that becomes the
reference. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from core.review.records import PromptItem, ReviewError


def prompts_from_messages(rows: Iterable[tuple[int, list[dict[str, str]] | None]],
                          ) -> tuple[list[PromptItem], int]:
    """Prompt items from ``(line, messages)`` rows, and how many rows were not chats.

    A final assistant turn becomes the reference; a row must still have a user turn.
    """
    from core.generate import split_prompt

    prompts, skipped = [], 0
    for line, messages in rows:
        if not messages:
            skipped += 1
            continue
        prompt, reference = split_prompt(messages)
        if not any(m.get("role") == "user" for m in prompt):
            skipped += 1
            continue
        prompts.append(PromptItem(messages=prompt, reference=reference, source_line=line))
    return prompts, skipped


def load_prompts(source: str, limit: int | None = None) -> tuple[list[PromptItem], str]:
    """Prompts from a dataset path, ``sample:<name>``, or ``val:<run dir>`` (its validation split).

    Returns the prompts and a description of where they came from. Raises ``DataError`` or
    :class:`ReviewError` with the fix.
    """
    from core.data import load_data, load_examples, split_examples

    if source.startswith("val:"):
        from core.config import RunConfig
        from core.rundir import CONFIG_FILE

        run_dir = Path(source.removeprefix("val:")).expanduser()
        config = RunConfig.load(run_dir / CONFIG_FILE)
        # the rows training read (one source or the mix), split as training split them
        loaded = load_data(replace(config.data, on_bad_rows="drop"), config.optim.seed)
        _, examples = split_examples(loaded.examples, config.data.validation_fraction,
                                     config.optim.seed)
        described = f"validation split of {run_dir.name} ({loaded.name})"
        if not examples:
            raise ReviewError(f"Run {run_dir.name} has no validation split "
                              "(data.validation_fraction is 0). Fix: choose a prompts file.")
    else:
        loaded = load_examples(source, on_bad_rows="drop")
        examples = loaded.examples
        described = source
    prompts, skipped = prompts_from_messages((e.line, e.messages) for e in examples)
    if not prompts:
        raise ReviewError(f"{described} has no chat rows to use as prompts ({skipped} plain-text "
                          "rows). Fix: use messages/sharegpt/alpaca rows.")
    if limit is not None and limit > 0:
        prompts = prompts[:limit]
    return prompts, described
