"""Will a run fit in memory: a YAML config's estimate, with its longest row measured.

The rows are measured on the configured dataset after the chat template (capped at
``data.max_length``) when it can be read; otherwise ``data.max_length`` is assumed. The
breakdown itself is :func:`core.memory.estimate_memory`; ``tunetop estimate`` prints what
:func:`estimate_config` returns, and the config screen uses :func:`longest_row_tokens`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.config import ConfigError, ConfigProblem, RunConfig

if TYPE_CHECKING:
    from core.memory import MemoryEstimate


def longest_row_tokens(config: RunConfig) -> tuple[int, str]:
    """The longest training row in tokens after the chat template, capped at ``max_length``.

    Returns ``(tokens, how)`` where ``how`` says where the figure came from; when the data or
    tokenizer cannot be read it falls back to ``data.max_length`` and says why.
    """
    cap = config.data.max_length
    try:
        from core import data as data_mod
        from core.models import load_tokenizer

        loaded = data_mod.load_data(dataclasses.replace(config.data, on_bad_rows="drop"),
                                    config.optim.seed)
        if not loaded.examples:
            return cap, f"no usable rows in {loaded.name}: assuming data.max_length {cap}"
        tokenizer = load_tokenizer(config.model.name_or_path, config.model.trust_remote_code,
                                   config.model.revision)
        rendered = data_mod.render_examples(tokenizer, loaded.examples, cap,
                                            config.data.assistant_only_loss,
                                            data_mod.RenderOptions.from_config(config.data))
    except Exception as exc:  # any unreadable data or tokenizer: the cap is a safe upper bound
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return cap, f"data not measured ({first}): assuming data.max_length {cap}"
    longest = data_mod.token_stats(rendered).max
    return min(longest, cap), (f"longest of {len(rendered)} rows after the chat template "
                               f"(data.max_length {cap})")


@dataclass(frozen=True)
class ConfigEstimate:
    """The memory estimate of one config, and the row length it assumed."""

    config: RunConfig
    tokens: int
    """Tokens of the longest row the estimate assumes."""
    tokens_source: str
    """Where ``tokens`` came from (measured, given, or assumed and why)."""
    estimate: MemoryEstimate


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
    if longest_tokens is None:
        tokens, how = longest_row_tokens(config)
    else:
        tokens = min(longest_tokens, config.data.max_length)
        how = (f"{longest_tokens} tokens given on the command line "
               f"(data.max_length {config.data.max_length})")
    estimate = memory.estimate_memory(model_config, config, tokens, device="auto")
    return ConfigEstimate(config, tokens, how, estimate)
