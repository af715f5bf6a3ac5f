"""``tunetop estimate CONFIG.yaml``: will this run fit in memory, and if not, what would.

Prints the trainable parameters and the memory breakdown of :mod:`core.memory` for a YAML
config. The rows are measured on the configured dataset after the chat template (capped at
``data.max_length``) when it can be read; otherwise ``data.max_length`` is assumed.
Exit status: 0 fits (or tight), 1 will not fit, 2 the config or model cannot be used.
"""

from __future__ import annotations

import sys
from core.config import ConfigError, ConfigProblem, RunConfig

EXIT_FITS = 0
EXIT_WONT_FIT = 1
EXIT_BAD_CONFIG = 2


def longest_row_tokens(config: RunConfig) -> tuple[int, str]:
    """The longest training row in tokens after the chat template, capped at ``max_length``.

    Returns ``(tokens, how)`` where ``how`` says where the figure came from; when the data or
    tokenizer cannot be read it falls back to ``data.max_length`` and says why.
    """
    cap = config.data.max_length
    try:
        from core import data as data_mod
        from core.models import load_tokenizer

        loaded = data_mod.load_examples(config.data.path, format=config.data.format,
                                        on_bad_rows="drop")
        if not loaded.examples:
            return cap, f"no usable rows in {config.data.path}: assuming data.max_length {cap}"
        tokenizer = load_tokenizer(config.model.name_or_path, config.model.trust_remote_code,
                                   config.model.revision)
        rendered = data_mod.render_examples(tokenizer, loaded.examples, cap,
                                            config.data.assistant_only_loss)
    except Exception as exc:  # any unreadable data or tokenizer: the cap is a safe upper bound
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return cap, f"data not measured ({first}): assuming data.max_length {cap}"
    longest = data_mod.token_stats(rendered).max
    return min(longest, cap), (f"longest of {len(rendered)} rows after the chat template "
                               f"(data.max_length {cap})")


def estimate_main(config_path: str, longest_tokens: int | None = None) -> int:
    """Print the estimate for the config at ``config_path``; return the exit status.

    ``longest_tokens`` overrides the measured longest row (e.g. ``--tokens 1024``). Problems
    go to stderr, the estimate to stdout.
    """
    err = sys.stderr
    try:
        config = RunConfig.load(config_path)
        config.check()
    except ConfigError as exc:
        print(f"tunetop estimate: {config_path} is not a usable config.\n{exc}", file=err)
        return EXIT_BAD_CONFIG

    from core import memory
    from core.models import ModelError, load_model_config

    try:
        model_config = load_model_config(config.model.name_or_path,
                                         config.model.trust_remote_code, config.model.revision)
        problem = (memory.target_modules_problem(model_config, config.lora.target_modules,
                                                 config.model.trust_remote_code)
                   if config.method != "full" else None)
    except ModelError as exc:
        print(f"tunetop estimate: {exc}", file=err)
        return EXIT_BAD_CONFIG
    if problem is not None:
        print(f"tunetop estimate: {config_path} is not a usable config.\n"
              f"{ConfigError([problem], config_path)}", file=err)
        return EXIT_BAD_CONFIG
    if config.method == "qlora" and not memory.has_bitsandbytes():
        bad = ConfigProblem("method", "qlora needs bitsandbytes, which is not installed.",
                            "pip install bitsandbytes, or use lora.")
        print(f"tunetop estimate: {ConfigError([bad], config_path)}", file=err)
        return EXIT_BAD_CONFIG

    if longest_tokens is None:
        tokens, how = longest_row_tokens(config)
    else:
        tokens = min(longest_tokens, config.data.max_length)
        how = f"{longest_tokens} tokens given on the command line (data.max_length {config.data.max_length})"
    estimate = memory.estimate_memory(model_config, config, tokens, device="auto")
    print(f"Config {config_path}: {config.model.name_or_path}")
    print(f"Rows: {tokens} tokens, {how}")
    print(memory.format_estimate(estimate))
    return EXIT_WONT_FIT if estimate.verdict == "will not fit" else EXIT_FITS

