"""Training data: where rows come from, reading, format detection, normalisation, rendering
and checks.

Sources (``sources``) are files, directories, Hub ids (``hub``) and LLaMA-Factory registries
(``registry``); several mix into one (``mix``). The flow is :func:`open_dataset` (``files``:
whole-file checks, incremental reading) ->
:func:`detect_format` (``formats``: first rows only) -> :func:`normalise_row` (``normalise``:
one row to chat ``messages`` or plain ``text``, with problems) -> :func:`render_example`
(``render``: the exact tokens the model sees, with the loss mask) ->
:func:`tokenize_for_training` (plain ``input_ids``/``labels`` lists for TRL's ``SFTTrainer``);
:func:`training_outcome` (``outcome``) renders every row as training does and says which rows
training keeps, drops or cuts at a ``max_length``, for the engine and every report alike.
:func:`open_rows` (``load``) runs the first three as one generator, which both
:func:`load_examples` and the dataset screen's reader consume; :func:`dataset_report`
(``checks``) splits and checks the rows for duplicates, refusals, short answers, placeholders
and train/validation leakage, the same for ``tunetop inspect`` and the screen; :class:`TokenStats`
(``lengths``) summarises token lengths for every caller. :func:`load_data` reads what a
``DataConfig`` names (one source or a mix), for training, ``tunetop inspect`` and the screen.

Bad input never raises a raw traceback: whole-file problems raise :class:`DataError` naming the
file and the fix; row problems become :class:`Problem` records with their line (JSONL) or row
number, and bad rows are dropped and counted, or stop the load, as the user chose.

Nothing here imports Textual, and the heavy libraries (``datasets``, ``pyarrow``, ``numpy``) are
imported only by the functions that need them, so the UI can import this package at start-up.
Limits such as ``files.MAX_LINE_BYTES`` live in (and are patched in) their own module.
"""

from __future__ import annotations

from core.data.checks import (
    CHECK_ROWS,
    NEAR_DUPLICATE_SIMILARITY,
    PLACEHOLDER_PATTERN,
    REFUSAL_PATTERNS,
    DatasetReport,
    DatasetStats,
    dataset_report,
    dataset_stats,
    finding_kind,
    is_short_answer,
)
from core.data.files import (
    SUPPORTED,
    TEXT_SUFFIXES,
    DatasetFile,
    RawRow,
    iter_jsonl_rows,
    open_dataset,
)
from core.data.formats import DETECT_ROWS, detect_format
from core.data.lengths import TokenStats, length_histogram, length_stats, token_stats
from core.data.load import (
    LoadResult,
    PreferenceResult,
    ReadRow,
    RowReader,
    load_data,
    load_examples,
    load_preferences,
    open_preferences,
    open_rows,
    preference_refusal,
    split_examples,
)
from core.data.mix import SourceReport, plan_mix, replay_rows
from core.data.normalise import (
    CALL_ROLES,
    ROLE_ALIASES,
    TOOL_ROLES,
    Example,
    Preference,
    RowShape,
    Tags,
    normalise_preference,
    normalise_row,
)
from core.data.outcome import TrainingOutcome, rendering_problems, training_outcome
from core.data.problems import JSONL_SUFFIXES, DataError, Problem, position_unit
from core.data.prompts import prompt_messages, read_prompts
from core.data.registry import REGISTRY_FILE, RegistryEntry, is_registry, read_registry
from core.data.render import Rendered, render_example, render_examples, tokenize_for_training
from core.data.template_probe import (
    END_OF_TURN_TOKENS,
    RenderError,
    RenderOptions,
    TemplateInfo,
    fallback_tool_messages,
    template_info,
)
from core.data.sources import (
    SAMPLES,
    SAMPLES_DIR,
    parse_hub_id,
    parse_selection,
    resolve_data_path,
    resolve_source,
    selection_ref,
    source_specs,
)
from core.data.templates import CHATML_TEMPLATE, resolve_template, template_names

__all__ = [
    "CALL_ROLES", "CHATML_TEMPLATE", "CHECK_ROWS", "DETECT_ROWS", "END_OF_TURN_TOKENS",
    "JSONL_SUFFIXES", "NEAR_DUPLICATE_SIMILARITY", "PLACEHOLDER_PATTERN", "REFUSAL_PATTERNS",
    "REGISTRY_FILE", "ROLE_ALIASES", "SAMPLES", "SAMPLES_DIR", "SUPPORTED", "TEXT_SUFFIXES",
    "TOOL_ROLES",
    "DataError", "DatasetFile", "DatasetReport", "DatasetStats", "Example", "LoadResult",
    "Preference", "PreferenceResult", "Problem", "RawRow", "ReadRow", "RegistryEntry",
    "RenderError", "RenderOptions", "Rendered", "RowReader", "RowShape", "SourceReport",
    "Tags", "TemplateInfo", "TokenStats", "TrainingOutcome",
    "dataset_report", "dataset_stats", "detect_format", "fallback_tool_messages",
    "finding_kind", "is_registry", "is_short_answer", "iter_jsonl_rows", "length_histogram",
    "length_stats", "load_data", "load_examples", "load_preferences", "open_preferences", "normalise_preference",
    "normalise_row", "open_dataset", "open_rows", "parse_hub_id", "parse_selection",
    "plan_mix", "position_unit", "preference_refusal", "prompt_messages", "read_prompts",
    "read_registry", "replay_rows", "render_example",
    "render_examples", "rendering_problems", "resolve_data_path", "resolve_source",
    "resolve_template", "selection_ref", "source_specs", "split_examples", "template_info",
    "template_names", "token_stats", "tokenize_for_training", "training_outcome",
]
