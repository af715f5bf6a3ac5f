"""What training does with rows at one ``max_length`` and chat template: kept, dropped, cut.

:func:`training_outcome` renders every row exactly as training does (:func:`render_example`,
with the same :class:`~core.data.template_probe.RenderOptions`: ``data.chat_template``,
``data.default_system_prompt``, ``data.text_chunking``; tool calls and reasoning natively or
through the fallbacks; turns of weight 0 masked) and sorts it: kept, or dropped because
nothing in its first ``max_length`` tokens is trained (the prompt fills the budget) or because
rendering refused it (the template rejected it, or its content holds a control token); cut at
``max_length`` (or, a text row with chunking, trained in chunks); its end-of-turn token
trained or not. The engine trains on the rows it keeps and logs its counts; ``tunetop inspect``,
``tunetop estimate``, the config screen and the dataset screen show the same
:class:`TrainingOutcome`, so every count of rows dropped or cut comes from this one place.

Rendering costs about 2 ms a row (two cores): 640 rows take about a second, 100,000 rows
about three minutes, so the dataset screen runs it in a child process with progress
(:func:`core.rows.outcome_in_subprocess`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.data.lengths import TokenStats, length_stats
from core.data.normalise import Example
from core.data.problems import DataError, Problem
from core.data.render import Rendered, _render
from core.data.template_probe import RenderOptions, template_for

PROGRESS_ROWS = 200
"""Rows rendered between two calls of the ``progress`` callback."""


def row_problems(r: Rendered, source: str = "") -> list[Problem]:
    """What is wrong with one rendered row for training: no trained token (training drops
    it, an error), its end-of-turn token not trained (a warning: the model may not learn to
    stop; not said of a row cut at ``max_length``), and the template's notes (warnings)."""
    out = [Problem(source, r.line, "template", note,
                   "Check the chat template, or simplify the turn.", "warning")
           for note in r.notes]
    if not r.num_trained:
        if r.truncated:
            message = (f"no trained token in the first {r.num_tokens} tokens: the prompt "
                       "fills max_length, so training drops the row.")
            fix = "Raise data.max_length, or shorten the prompt."
        else:
            message = "no trained token: the row teaches nothing, so training drops it."
            fix = "Give the row an assistant answer, or check the chat template."
        out.append(Problem(source, r.line, "labels", message, fix, "error"))
    elif not r.eos_trained and not r.truncated:
        out.append(Problem(source, r.line, "labels",
                           "the end-of-turn/EOS token is not trained, so the model may not "
                           "learn to stop.", "Use a chat template that ends assistant turns "
                           "with the EOS token.", "warning"))
    return out


def rendering_problems(rendered: Iterable[Rendered], source: str = "") -> list[Problem]:
    """:func:`row_problems` of every row, after one note about a missing chat template."""
    out: list[Problem] = []
    template_noted = False
    for r in rendered:
        if r.template_note and not template_noted:
            template_noted = True
            out.append(_template_problem(r.template_note, source))
        out.extend(row_problems(r, source))
    return out


def _template_problem(note: str, source: str) -> Problem:
    return Problem(source, None, "chat_template", note,
                   "Use an instruct model, or give the tokenizer a chat template.", "warning")


@dataclass
class TrainingOutcome:
    """What training does with a dataset's rows at one ``max_length`` and template."""

    source: str
    max_length: int
    rows: int = 0
    """Rows given (the rows the loader kept)."""
    refused: list[int] = field(default_factory=list)
    """Lines of rows rendering refused (template rejected, control token): dropped."""
    untrained: list[int] = field(default_factory=list)
    """Lines of rows with no trained token in their first ``max_length`` tokens: dropped."""
    truncated: list[int] = field(default_factory=list)
    """Lines of rows longer than ``max_length``, cut there (kept or not)."""
    chunked: list[int] = field(default_factory=list)
    """Lines of text rows longer than ``max_length`` trained in chunks (``data.text_chunking``)."""
    chunk_rows: int = 0
    """Training rows the :attr:`chunked` rows become."""
    eos_missing: list[int] = field(default_factory=list)
    """Lines of kept rows whose last trained token is not the end-of-turn token."""
    eos_cut: int = 0
    """Of ``eos_missing``, the rows cut at ``max_length`` before their end-of-turn token."""
    lengths: array = field(default_factory=lambda: array("i"))
    """Tokens of each training row before the cut: one per rendered row, one per chunk of a
    chunked row (refused rows have none)."""
    trained_tokens: int = 0
    """Tokens that count in the loss, over every kept row."""
    problems: list[Problem] = field(default_factory=list)
    """Every problem found, in row order: refused and untrained rows (errors), EOS and
    template warnings; a missing chat template first."""
    training_rows: list[dict[str, list[int]] | None] | None = None
    """With ``keep_rows``: per row given, in order, its ``input_ids``/``labels`` for the
    trainer, or ``None`` where it is dropped; a chunked row whole (see :meth:`trainer_rows`)."""

    @property
    def dropped(self) -> int:
        """Rows training drops: refused, or with no trained token."""
        return len(self.refused) + len(self.untrained)

    @property
    def kept(self) -> int:
        """Rows training keeps."""
        return self.rows - self.dropped

    @property
    def eos_trained(self) -> int:
        """Kept rows whose end-of-turn token is trained."""
        return self.kept - len(self.eos_missing)

    def tokens(self) -> TokenStats:
        """Token lengths of the rendered rows against ``max_length``, with trained tokens."""
        return length_stats(self.lengths, self.max_length, trained_tokens=self.trained_tokens)

    def drop_summary(self) -> str:
        """``220 of 640 rows teach nothing at max_length 128`` (and why, when rendering
        refused some); empty when no row is dropped."""
        if not self.dropped:
            return ""
        refused = (f" ({len(self.refused):,} refused by the chat template or for a control "
                   "token in their content)" if self.refused else "")
        return (f"{self.dropped:,} of {self.rows:,} rows teach nothing at max_length "
                f"{self.max_length:,}{refused}")

    def eos_summary(self) -> str:
        """``EOS trained in 11 of 420 kept rows (409 cut before their end)``."""
        cut = f" ({self.eos_cut:,} cut before their end)" if self.eos_cut else ""
        return f"EOS trained in {self.eos_trained:,} of {self.kept:,} kept rows{cut}"

    def first_error(self) -> Problem | None:
        """The first problem that drops a row (for ``on_bad_rows: stop``)."""
        return next((p for p in self.problems if p.severity == "error"), None)

    def trainer_rows(self, rows: Iterable[dict[str, list[int]] | None]
                     ) -> list[dict[str, list[int]]]:
        """The trainer's rows from some of :attr:`training_rows` (a split of them): dropped
        rows left out, a chunked row cut into rows of ``max_length`` tokens."""
        n = self.max_length
        return [{key: ids[start:start + n] for key, ids in row.items()}
                for row in rows if row is not None
                for start in range(0, len(row["input_ids"]), n)]


def training_outcome(tokenizer: Any, examples: Iterable[Example], max_length: int,
                     assistant_only_loss: bool = True, source: str = "", *,
                     options: RenderOptions | None = None, keep_rows: bool = False,
                     progress: Callable[[int], None] | None = None) -> TrainingOutcome:
    """Render every row as training does and say what training does with it.

    ``options`` are the rendering options training uses (template, system prompt, text
    chunking; see :meth:`RenderOptions.from_config`). A row is dropped when rendering refuses
    it (:class:`~core.data.template_probe.RenderError`) or when none of its first ``max_length``
    tokens is trained; each dropped row gets an error problem naming its line (and, in a mix,
    its source) and the fix. ``keep_rows`` keeps the trainer's rows (see
    :attr:`TrainingOutcome.training_rows`). ``progress(done)`` is called every
    :data:`PROGRESS_ROWS` rows.
    """
    options = options or RenderOptions()
    info = template_for(tokenizer, options)
    out = TrainingOutcome(source, max_length, training_rows=[] if keep_rows else None)
    template_noted = False
    for done, example in enumerate(examples, 1):
        out.rows += 1
        if progress is not None and done % PROGRESS_ROWS == 0:
            progress(done)
        where = example.source or source  # in a mix, the row's own source
        try:
            r = _render(info, example, max_length, assistant_only_loss, options.text_chunking)
        except DataError as exc:
            out.refused.append(example.line)
            out.problems.append(Problem(
                where, example.line, getattr(exc, "field", "template"),
                getattr(exc, "message", str(exc)), exc.fix))
            if keep_rows:
                out.training_rows.append(None)  # type: ignore[union-attr]
            continue
        if r.template_note and not template_noted:
            template_noted = True
            out.problems.insert(0, _template_problem(r.template_note, source))
        out.lengths.extend(r.lengths())
        out.problems.extend(row_problems(r, where))
        if r.truncated:
            out.truncated.append(r.line)
        if r.chunked:
            out.chunked.append(r.line)
            out.chunk_rows += len(r.lengths())
        trained = r.num_trained
        if not trained:
            out.untrained.append(r.line)
        else:
            out.trained_tokens += trained
            if not r.eos_trained:
                out.eos_missing.append(r.line)
                out.eos_cut += r.truncated
        if keep_rows:
            out.training_rows.append(  # type: ignore[union-attr]
                r.to_training_row() if trained else None)
    return out
