"""The run configuration: typed dataclasses, YAML load/save and validation.

Key names mirror TRL ``SFTConfig`` / transformers ``TrainingArguments`` and PEFT ``LoraConfig``
so that users recognise them. :func:`RunConfig.validate` returns every problem at once, each
naming its field and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUNDLED_MODEL = "bundled:smollm2-135m-instruct"
SAMPLE_DATASET = "sample:support-tickets"

METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text")


@dataclass
class ConfigProblem:
    """One invalid field: dotted ``field`` name, what is wrong and how to fix it."""

    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} Fix: {self.fix}"


class ConfigError(ValueError):
    """Raised with every problem of a config (never just the first)."""

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s){where}:\n{lines}")


@dataclass
class ModelConfig:
    """Which model to fine-tune and how to load it."""

    name_or_path: str = BUNDLED_MODEL
    """Hub id (``org/name``), local directory, or ``bundled:smollm2-135m-instruct``."""
    revision: str | None = None
    """Hub branch, tag or commit; ``None`` for the default branch."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust its authors."""
    allow_pickle_weights: bool = False
    """Allow ``.bin`` (pickle) weights when no safetensors exist. Pickle can run code."""
    attn_implementation: str = "sdpa"
    """Attention kernel: ``sdpa`` (default), ``eager`` or ``flash_attention_2``."""
    adapter: str | None = None
    """A LoRA adapter to continue training: a run directory or an adapter directory; the new
    run starts from its weights (its rank and target modules replace ``lora``'s), and a full
    fine-tune starts from the base with the adapter merged in."""


@dataclass
class LoraSettings:
    """PEFT ``LoraConfig`` fields used for ``lora`` and ``qlora``."""

    r: int = 16
    """Adapter rank: 8-16 to start, higher for harder tasks."""
    lora_alpha: int = 32
    """Scaling numerator, usually about 2x the rank."""
    lora_dropout: float = 0.05
    """Dropout on the adapter input, 0-0.1."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """Module names to adapt: the attention projections, or add MLP ones (gate/up/down_proj)."""


@dataclass
class OptimConfig:
    """Optimisation; names follow ``TrainingArguments``."""

    learning_rate: float = 2e-4
    """Peak learning rate: ~2e-4 for LoRA, ~2e-5 for full fine-tuning."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up, 5-10%."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    num_train_epochs: float = 3.0
    """Passes over the training split (1-3 usual); ignored when ``max_steps`` > 0."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 uses ``num_train_epochs``."""
    per_device_train_batch_size: int = 8
    """Micro-batch: rows per forward pass on each device."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step; effective batch = micro-batch x this x processes."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    seed: int = 42
    """Seed for initialisation, data order and the validation split."""
    precision: str = "auto"
    """``auto`` picks bf16 where the device supports it, else fp32."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% slower."""
    padding_free: bool = True
    """Join each micro-batch into one sequence with no padding; position ids keep the rows
    apart in attention. Used on CPU (sdpa or eager) and with flash attention on a GPU,
    without remote code; elsewhere batches are padded (see the run log)."""
    group_by_length: bool = True
    """With padded batches, batch rows of similar length so less compute goes to padding."""
    retry_on_oom: bool = False
    """On out of memory, halve the micro-batch, double accumulation and continue."""


@dataclass
class DataConfig:
    """Where the training data comes from and how it is prepared."""

    path: str = SAMPLE_DATASET
    """JSON/JSONL/CSV/Parquet file, a ``save_to_disk`` directory, or ``sample:support-tickets``."""
    format: str = "auto"
    """Row format; ``auto`` detects it from the first rows."""
    max_length: int = 512
    """Tokens per row after the chat template; longer rows are truncated."""
    validation_fraction: float = 0.1
    """Share of rows held out for validation loss, 0 to disable."""
    assistant_only_loss: bool = True
    """Train only on assistant turns (prompts are masked from the loss)."""
    on_bad_rows: str = "drop"
    """``drop`` bad rows (always counted and reported) or ``stop`` on the first."""


@dataclass
class EvalConfig:
    """Evaluation, checkpoints and early stopping."""

    eval_steps: int = 25
    """Optimizer steps between validation runs."""
    save_steps: int = 25
    """Optimizer steps between checkpoints."""
    logging_steps: int = 5
    """Optimizer steps between logged training metrics."""
    per_device_eval_batch_size: int = 16
    """Rows per forward pass during validation."""
    early_stopping_patience: int = 3
    """Stop after this many validations without improvement; 0 disables."""
    keep_best: bool = True
    """Load the best checkpoint (lowest validation loss) at the end and export it."""
    save_total_limit: int = 3
    """Checkpoints kept on disk (the best one is always kept)."""


@dataclass
class RunConfig:
    """Everything a fine-tuning run needs."""

    method: str = "lora"
    """``lora``, ``qlora`` (4-bit base) or ``full``."""
    run_name: str | None = None
    """Name of the run directory; ``None`` makes one from the time."""
    output_dir: str = "runs"
    """Workspace holding one directory per run."""
    num_processes: int = 1
    """Processes (GPUs) to train on; more than 1 launches through ``accelerate``."""
    distributed_strategy: str = "ddp"
    """With several processes: ``ddp`` (data parallel) or ``fsdp`` (sharded, full fine-tuning)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # --- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, the YAML layout."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """YAML text of the whole config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML."""
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "") -> "RunConfig":
        """Build a config from nested dicts; unknown keys and wrong types raise ConfigError."""
        problems: list[ConfigProblem] = []
        config = _build(cls, data or {}, "", problems)
        if problems:
            raise ConfigError(problems, source)
        return config

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read a YAML config; every problem is reported with its field name."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                [ConfigProblem("(file)", f"{p} does not exist.", "Check the path.")], str(p)
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [ConfigProblem("(file)", f"cannot read {p}: {exc}.", "Give a UTF-8 YAML file.")],
                str(p),
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(
                [ConfigProblem(f"(yaml{line})",
                               f"not valid YAML: {str(exc).replace('<unicode string>', p.name)}",
                               "Correct the syntax there: indent with spaces (not tabs), put a "
                               "colon and a space after each key, close every bracket and quote.")],
                str(p),
            ) from None
        if data is not None and not isinstance(data, dict):
            got = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
            raise ConfigError(
                [ConfigProblem("(top level)", f"must be a mapping of sections, got {got}.",
                               "Write keys at the top level (method: lora, then sections such "
                               "as lora:, optim:, data: with their keys indented under them)"
                               + (", not a list: remove the leading '- '." if got == "a list"
                                  else "; see the README."))],
                str(p),
            )
        return cls.from_dict(data, str(p))

    # --- validation ----------------------------------------------------------------------

    def validate(self) -> list[ConfigProblem]:
        """Every problem of the config with its field and fix; empty when valid."""
        out: list[ConfigProblem] = []

        def bad(name: str, message: str, fix: str) -> None:
            out.append(ConfigProblem(name, message, fix))

        if self.method not in METHODS:
            bad("method", f"'{self.method}' is not a method.", f"Use one of {', '.join(METHODS)}.")
        if self.num_processes < 1:
            bad("num_processes", "must be at least 1.", "Use 1 for a single GPU or CPU.")
        if self.distributed_strategy not in ("ddp", "fsdp"):
            bad("distributed_strategy", f"'{self.distributed_strategy}' is unknown.", "Use ddp or fsdp.")
        elif self.distributed_strategy == "fsdp" and self.method != "full":
            bad("distributed_strategy", "fsdp shards full fine-tuning only.",
                "Use ddp for lora and qlora, or set method: full.")
        if not self.model.name_or_path.strip():
            bad("model.name_or_path", "is empty.", f"Use a hub id, a directory or {BUNDLED_MODEL}.")
        if self.lora.r < 1:
            bad("lora.r", f"rank {self.lora.r} must be at least 1.", "Start with 8 or 16.")
        if self.lora.lora_alpha <= 0:
            bad("lora.lora_alpha", "must be positive.", "Use about 2x the rank.")
        if not 0 <= self.lora.lora_dropout < 1:
            bad("lora.lora_dropout", "must be in [0, 1).", "Use 0.05.")
        if self.method != "full" and not self.lora.target_modules:
            bad("lora.target_modules", "is empty.", "Name modules such as q_proj and v_proj.")
        o = self.optim
        if not (o.learning_rate > 0 and math.isfinite(o.learning_rate)):
            bad("optim.learning_rate", f"{o.learning_rate} must be positive.",
                "Use 2e-4 for LoRA or 2e-5 for full fine-tuning.")
        elif o.learning_rate > 1e-2:
            bad("optim.learning_rate", f"{o.learning_rate} is far too high and will diverge.",
                "Use 2e-4 for LoRA or 2e-5 for full fine-tuning.")
        if o.lr_scheduler_type not in SCHEDULERS:
            bad("optim.lr_scheduler_type", f"'{o.lr_scheduler_type}' is unknown.",
                f"Use one of {', '.join(SCHEDULERS)}.")
        if not 0 <= o.warmup_ratio < 1:
            bad("optim.warmup_ratio", "must be in [0, 1).", "Use 0.05-0.1.")
        if o.weight_decay < 0:
            bad("optim.weight_decay", "must not be negative.", "Use 0.01.")
        if o.max_steps == 0 or o.max_steps < -1:
            bad("optim.max_steps", "must be positive, or -1 to train by epochs.", "Use -1.")
        if o.max_steps == -1 and not o.num_train_epochs > 0:
            bad("optim.num_train_epochs", "must be positive.", "Use 1-3 epochs.")
        if o.per_device_train_batch_size < 1:
            bad("optim.per_device_train_batch_size", "must be at least 1.",
                "Use 1-8 and raise gradient_accumulation_steps instead.")
        if o.gradient_accumulation_steps < 1:
            bad("optim.gradient_accumulation_steps", "must be at least 1.", "Use 1.")
        if o.max_grad_norm <= 0:
            bad("optim.max_grad_norm", "must be positive.", "Use 1.0.")
        if o.precision not in PRECISIONS:
            bad("optim.precision", f"'{o.precision}' is unknown.", f"Use one of {', '.join(PRECISIONS)}.")
        d = self.data
        if not d.path.strip():
            bad("data.path", "is empty.", f"Give a dataset file or {SAMPLE_DATASET}.")
        if d.format not in DATA_FORMATS:
            bad("data.format", f"'{d.format}' is unknown.", f"Use one of {', '.join(DATA_FORMATS)}.")
        if d.max_length < 16:
            bad("data.max_length", f"{d.max_length} tokens is too short.", "Use 512-2048.")
        if not 0 <= d.validation_fraction < 1:
            bad("data.validation_fraction", "must be in [0, 1).", "Use 0.1.")
        if d.on_bad_rows not in ("drop", "stop"):
            bad("data.on_bad_rows", f"'{d.on_bad_rows}' is unknown.", "Use drop or stop.")
        e = self.eval
        for name in ("eval_steps", "save_steps", "logging_steps", "per_device_eval_batch_size"):
            if getattr(e, name) < 1:
                bad(f"eval.{name}", "must be at least 1.", "Use a positive whole number.")
        if e.early_stopping_patience < 0:
            bad("eval.early_stopping_patience", "must not be negative.", "Use 3, or 0 to disable.")
        if e.save_total_limit < 1:
            bad("eval.save_total_limit", "must be at least 1.", "Use 3.")
        if e.keep_best and e.save_steps % max(e.eval_steps, 1):
            bad("eval.save_steps", "must be a multiple of eval_steps when keep_best is on.",
                f"Set save_steps to {e.eval_steps}.")
        return out

    def check(self, source: str = "") -> None:
        """Raise ConfigError listing every problem, if any; ``source`` names the file."""
        problems = self.validate()
        if problems:
            raise ConfigError(problems, source)


def _build(cls: type, data: Any, prefix: str, problems: list[ConfigProblem]) -> Any:
    """Build dataclass ``cls`` from ``data``, collecting problems instead of raising."""
    if not isinstance(data, dict):
        problems.append(ConfigProblem(prefix.rstrip(".") or "(top level)",
                                      f"must be a mapping, got {type(data).__name__}.",
                                      "Indent the section's keys under it."))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            # Match short forms too, so `alpah` finds `lora_alpha`.
            aliases = {**{k.split("_", 1)[-1]: k for k in fields}, **{k: k for k in fields}}
            close = difflib.get_close_matches(str(key), list(aliases), n=1, cutoff=0.6)
            hint = f"Did you mean {aliases[close[0]]}?" if close else f"Known keys: {', '.join(fields)}."
            problems.append(ConfigProblem(name, "unknown key.", hint))
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{name}.", problems)
            continue
        ok, converted = _coerce(value, hint)
        if ok:
            kwargs[key] = converted
        else:
            problems.append(ConfigProblem(name, f"expected {_type_name(hint)}, got {value!r}.",
                                          f"Give a {_type_name(hint)}."))
    return cls(**kwargs)


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is not type(None):
                ok, out = _coerce(value, arg)
                if ok:
                    return True, out
        return False, None
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return False, None
        return True, list(value)
    if hint is bool:
        return (True, value) if isinstance(value, bool) else (False, None)
    if hint is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if hint is float:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # YAML reads 2e-4 without a dot as a string
            try:
                return True, float(value)
            except ValueError:
                return False, None
        return False, None
    if hint is str:
        return (True, value) if isinstance(value, str) else (False, None)
    return True, value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is list:
        return "list of names"
    return {bool: "true/false", int: "whole number", float: "number", str: "string"}.get(
        hint, str(hint)
    )

