"""Blind A/B review sets: prompts, both models' answers, judgements, statistics and export.

A review set is a directory ``<root>/review/<name>/`` (``root`` is usually the run directory
of model B, but any directory works):

- ``meta.json``: both model references (``a``, ``b``), the prompts' source, the generation
  settings, ``side_seed``, and whether generation has finished;
- ``prompts.jsonl``: every prompt to review (messages and reference answer), written first so
  that an interrupted generation can continue where it stopped;
- ``items.jsonl``: one line per generated prompt: prompt messages, reference, output A,
  output B and ``a_side`` (``left`` or ``right``), appended as each batch is ready;
- ``judgements.jsonl``: an append-only log, each line flushed and ``fsync``-ed the moment it
  is made. Records are ``judgement`` (item and verdict as the reviewer saw it: ``left``,
  ``right``, ``tie``, ``both_bad`` or ``skip``), ``undo`` (which earlier record it cancels)
  and ``reveal``. The current verdict of an item is its latest judgement not undone.

Modules: ``records`` (items, judgements, sides), ``store`` (the set on disk), ``stats`` (win
rate and checks), ``report`` (Markdown and CSV), ``prompts`` (prompt sources), ``jobs``
(generation), ``workspace`` (what a workspace offers to review). Their public names are
importable from here. Nothing here imports torch or Textual.
"""

from core.review.jobs import Choice, GenerationJob, generate_into, prepare_job, resolve_choice
from core.review.prompts import load_prompts, prompts_from_messages
from core.review.records import (VERDICT_LABELS, VERDICTS, Judgement, PromptItem, ReviewError,
                                 ReviewItem, a_side_for)
from core.review.report import CSV_COLUMNS, markdown_report
from core.review.stats import (OUTCOME_LABELS, WIN_RATE_DEFINITION, Z_95, ItemRow, ReviewStats,
                               SideChecks, check_answer, wilson_interval)
from core.review.store import (CSV_FILE, FORMAT_VERSION, ITEMS_FILE, JUDGEMENTS_FILE,
                               MARKDOWN_FILE, META_FILE, PROMPTS_FILE, REVIEW_DIR, ReviewSet,
                               ReviewSetInfo, append_items, default_set_name, find_review_sets,
                               slug, write_meta)
from core.review.workspace import (FILE_PROMPTS, GENERAL_SAMPLE, HELD_OUT_SAMPLE, ReviewChoices,
                                   scan_workspace)

__all__ = [
    "CSV_COLUMNS", "CSV_FILE", "FILE_PROMPTS", "FORMAT_VERSION", "GENERAL_SAMPLE",
    "HELD_OUT_SAMPLE", "ITEMS_FILE",
    "JUDGEMENTS_FILE", "MARKDOWN_FILE", "META_FILE", "OUTCOME_LABELS", "PROMPTS_FILE",
    "REVIEW_DIR", "VERDICTS", "VERDICT_LABELS", "WIN_RATE_DEFINITION", "Z_95", "Choice",
    "GenerationJob", "ItemRow", "Judgement", "PromptItem", "ReviewChoices", "ReviewError",
    "ReviewItem", "ReviewSet", "ReviewSetInfo", "ReviewStats", "SideChecks", "a_side_for",
    "append_items", "check_answer", "default_set_name", "find_review_sets", "generate_into",
    "load_prompts", "markdown_report", "prepare_job", "prompts_from_messages", "resolve_choice",
    "scan_workspace", "slug", "wilson_interval", "write_meta",
]
