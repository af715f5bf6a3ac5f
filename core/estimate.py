"""Will a run fit in memory: a YAML config's estimate, with its longest row measured.

The rows are rendered on the configured dataset as training renders them
(:func:`core.data.training_outcome`, capped at ``data.max_length``) when it can be read; that
gives the longest row and the rows training will drop, both shown before a run starts.
Otherwise ``data.max_length`` is assumed. The breakdown itself is
:func:`core.memory.estimate_memory`; ``tunetop estimate`` prints what :func:`estimate_config`
returns, and the config screen uses :func:`measure_rows`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.config import ConfigError, ConfigProblem, RunConfig

if TYPE_CHECKING:
    from core.data import TrainingOutcome
    from core.memory import MemoryEstimate


@dataclass(frozen=True)
class RowsMeasured:
    """The configured dataset rendered as training renders it."""

    tokens: int
    """The longest row in tokens after the chat template, capped at ``data.max_length``."""
    how: str
    """Where ``tokens`` came from (measured, or assumed and why)."""
    outcome: TrainingOutcome | None = None
    """What training does with the rows (kept, dropped, cut); ``None`` when not measured."""


def measure_rows(config: RunConfig) -> RowsMeasured:
    """Render the configured dataset as training will: its longest row and what is dropped.

    When the data or tokenizer cannot be read the longest row falls back to
    ``data.max_length``, a safe upper bound, and ``how`` says why.
    """
    cap = config.data.max_length
    try:
        from core import data as data_mod
        from core.models import load_tokenizer

        loaded = data_mod.load_data(dataclasses.replace(config.data, on_bad_rows="drop"),
                                    config.optim.seed)
        if not loaded.examples:
            return RowsMeasured(cap, f"no usable rows in {loaded.name}: assuming "
                                     f"data.max_length {cap}")
        tokenizer = load_tokenizer(config.model.name_or_path, config.model.trust_remote_code,
                                   config.model.revision)
        outcome = data_mod.training_outcome(tokenizer, loaded.examples, cap,
                                            config.data.assistant_only_loss, loaded.name,
                                            options=data_mod.RenderOptions.from_config(config.data))
    except Exception as exc:  # any unreadable data or tokenizer: the cap is a safe upper bound
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return RowsMeasured(cap, f"data not measured ({first}): assuming data.max_length {cap}")
    longest = outcome.tokens().max
    return RowsMeasured(min(longest, cap), f"longest of {outcome.rows - len(outcome.refused)} "
                                           f"rows after the chat template (data.max_length {cap})",
                        outcome)


def longest_row_tokens(config: RunConfig) -> tuple[int, str]:
    """The longest training row in tokens after the chat template, capped at ``max_length``,
    and where the figure came from (see :func:`measure_rows`)."""
    measured = measure_rows(config)
    return measured.tokens, measured.how


@dataclass(frozen=True)
class ConfigEstimate:
    """The memory estimate of one config, and the row length it assumed."""

    config: RunConfig
    tokens: int
    """Tokens of the longest row the estimate assumes."""
    tokens_source: str
    """Where ``tokens`` came from (measured, given, or assumed and why)."""
    estimate: MemoryEstimate
    outcome: TrainingOutcome | None = None
    """What training does with the rows at ``data.max_length``; ``None`` when the rows were
    not rendered (unreadable, or ``longest_tokens`` given)."""


def estimate_config(config_path: str, longest_tokens: int | None = None) -> ConfigEstimate:
    """The estimate for the YAML config at ``config_path`` on this machine.

    ``longest_tokens`` replaces the measured longest row. Raises :class:`ConfigError` when the
    config cannot be used (bad fields, LoRA target modules the model lacks, QLoRA without
    bitsandbytes) and :class:`core.models.ModelError` when the model cannot be read.
    """
    from core import memory
    from core.models import load_model_config

    config = RunConfig.load(config_path)
    config.check()
    model_config = load_model_config(config.model.name_or_path, config.model.trust_remote_code,
                                     config.model.revision)
    if config.method != "full":
        problem = memory.target_modules_problem(model_config, config.lora.target_modules,
                                                config.model.trust_remote_code)
        if problem is not None:
            raise ConfigError([problem], config_path)
    if config.method == "qlora" and not memory.has_bitsandbytes():
        raise ConfigError([ConfigProblem("method", "qlora needs bitsandbytes, which is not installed.",
                                         "pip install bitsandbytes, or use lora.")], config_path)
    outcome = None
    if longest_tokens is None:
        measured = measure_rows(config)
        tokens, how, outcome = measured.tokens, measured.how, measured.outcome
    else:
        tokens = min(longest_tokens, config.data.max_length)
        how = (f"{longest_tokens} tokens given on the command line "
               f"(data.max_length {config.data.max_length})")
    estimate = memory.estimate_memory(model_config, config, tokens, device="auto")
    return ConfigEstimate(config, tokens, how, estimate, outcome)
