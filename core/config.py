"""The run configuration: typed dataclasses, YAML load/save and validation.

Key names mirror TRL ``SFTConfig`` / transformers ``TrainingArguments`` and PEFT ``LoraConfig``
so that users recognise them. :func:`RunConfig.validate` returns every problem at once, each
naming its field and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.config_yaml import ConfigError, ConfigProblem, build, quote, read_config
from core.trackers import TRACKERS

BUNDLED_MODEL = "bundled:smollm2-135m-instruct"
SAMPLE_DATASET = "sample:support-tickets"
GENERAL_PROMPTS = "sample:general-prompts"
"""The bundled general probe set (``core/samples/general_prompts.jsonl``)."""

METHODS = ("lora", "qlora", "full")
OBJECTIVES = ("sft", "dpo", "orpo")
"""What a run learns: ``sft`` imitates answers; ``dpo`` and ``orpo`` learn from preference
pairs (a chosen and a rejected answer to one prompt)."""
DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair",
                  "apo_zero", "apo_down", "sigmoid_norm", "discopop", "aot", "aot_unpaired")
"""``DPOConfig.loss_type`` values TRL takes without further settings (``exo_pair`` needs label
smoothing, which tunetop does not expose)."""
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
DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text",
                "preference", "chosen")
"""Row formats: ``auto`` detects one; ``preference`` (prompt/chosen/rejected) is recognised for
preference training, ``chosen`` trains SFT on each prompt with its chosen answer."""
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
"""Values of ``model.attn_implementation`` transformers knows (flash attention needs its package)."""

USUAL_MAX_LEARNING_RATE = {"lora": 5e-3, "qlora": 5e-3, "full": 5e-4}
"""Above this (about 25x the usual 2e-4 / 2e-5) a learning rate earns a warning: runs at such
rates usually diverge, but a user who means it may go ahead."""
MAX_INT = 2**31 - 1
"""Largest whole number a field takes: no setting needs more, and the libraries below
(tokenizers, numpy) overflow on larger ones."""
MAX_SEED = 2**32 - 1
"""numpy and torch take seeds from 0 to 2^32 - 1."""


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
    """A LoRA adapter to continue training (an SFT run to tune by DPO, or to train longer): a
    run directory or an adapter directory; the new run starts from its weights (its r and
    target modules replace ``lora``'s), and a full fine-tune starts from the base with the
    adapter merged in."""


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
    time_budget: str = ""
    """Wall time the run must end within (``10m``, ``2h``, ``1h30m``), evaluations and
    checkpoints included: the steps are sized from measured step times and the learning-rate
    schedule fitted to them; never more steps than epochs or ``max_steps`` give. Empty: none."""
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
class SourceConfig:
    """One dataset of a mix (``data.sources``)."""

    path: str = ""
    """A file, a directory (saved dataset, dataset card folder or dataset_info.json registry),
    a Hub id ``org/name`` or ``org/name:subset``, or ``sample:<name>``."""
    dataset: str | None = None
    """Entry of the ``dataset_info.json`` registry in ``path``; ``None`` for other sources."""
    split: str = "train"
    """Split of a Hub dataset or dataset card folder."""
    revision: str | None = None
    """Hub branch, tag or commit of a Hub dataset; ``None`` for the default branch."""
    format: str = "auto"
    """Row format of this source; ``auto`` detects it."""
    weight: float | None = None
    """Share of the mixed set (weights are relative); ``None`` takes every kept row."""
    max_rows: int | None = None
    """Use at most this many of the source's kept rows, drawn with ``optim.seed``."""

    @property
    def label(self) -> str:
        """How messages name the source: its path, with the registry entry."""
        return f"{self.path} [{self.dataset}]" if self.dataset else self.path


@dataclass
class DataConfig:
    """Where the training data comes from and how it is prepared."""

    path: str = SAMPLE_DATASET
    """A JSON/JSONL/CSV/Parquet file, a directory (save_to_disk, dataset card folder, or a
    dataset_info.json registry with ``dataset``), a Hub id ``org/name[:subset]``, or
    ``sample:support-tickets``."""
    dataset: str | None = None
    """Entry to load when ``path`` is a directory with a ``dataset_info.json`` registry."""
    split: str = "train"
    """Split of a Hub dataset or dataset card folder."""
    revision: str | None = None
    """Hub branch, tag or commit of a Hub dataset; ``None`` for the default branch."""
    sources: list[SourceConfig] = field(default_factory=list)
    """Several datasets mixed into one (each with path, dataset, split, format, weight,
    max_rows); when set, it replaces ``path``. Edit it in the YAML."""
    format: str = "auto"
    """Row format; ``auto`` detects it from the first rows."""
    chat_template: str = "model"
    """``model`` (the tokenizer's own), a template name shipped with TRL (``chatml``,
    ``llama3``, ``qwen2_5``...), or a ``.jinja`` file."""
    default_system_prompt: str = "model"
    """System prompt for rows without one: ``model`` keeps the template's own, a text replaces
    it, empty gives none."""
    text_chunking: bool = False
    """Split ``text`` rows longer than ``max_length`` into chunks (continued pre-training)
    instead of truncating them."""
    max_length: int = 512
    """Tokens per row after the chat template; longer rows are truncated."""
    validation_fraction: float = 0.1
    """Share of rows held out for validation loss, 0 to disable."""
    assistant_only_loss: bool = True
    """Train only on assistant turns (prompts are masked from the loss)."""
    on_bad_rows: str = "drop"
    """``drop`` bad rows (always counted and reported) or ``stop`` on the first; bad rows
    include those training would drop (no trained token within ``max_length``, a control
    token in the content)."""
    replay: float = 0.0
    """Share of the training rows that are the base model's own answers to general prompts
    (self-distillation replay, against forgetting), e.g. 0.05; 0 for none."""


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
    max_rows: int = 0
    """Validation rows each evaluation during training reads (the first of the split); the
    whole split is evaluated once at the end. 0: the whole split every time. General drift
    has its own fixed prompt sample (``general_sample``), whatever this is."""
    early_stopping_patience: int = 3
    """Stop after this many validations without improvement; 0 disables."""
    keep_best: bool = True
    """Load the best checkpoint (lowest validation loss) at the end and export it."""
    save_total_limit: int = 3
    """Checkpoints kept on disk (the best one is always kept)."""
    general_prompts: str = GENERAL_PROMPTS
    """General instructions that measure forgetting: the bundled sample:general-prompts, or a
    file of prompts (messages ending in a user turn, or a prompt field)."""
    general_sample: int = 32
    """General prompts scored at each evaluation: a fixed sample, the same every run and apart
    from ``max_rows`` (which caps validation rows only); 0 turns drift off."""
    general_max_new_tokens: int = 48
    """Longest base-model answer to a general prompt, in tokens (generated once, cached)."""
    drift_threshold: float = 0.5
    """General drift (loss per token above the base model's on its own answers) past which,
    while it keeps rising, an alert says the fine-tune is forgetting. The sample task's LoRA
    run ends near 0.33, its full fine-tune at 2e-4 near 1.0 (``bench/forgetting.py``)."""


@dataclass
class PreferenceSettings:
    """Preference tuning (``objective: dpo`` or ``orpo``); names follow TRL ``DPOConfig``."""

    beta: float = 0.1
    """DPO: how far the model may move from the reference (higher stays closer; 0.1 usual,
    0.01-0.5). ORPO: the weight of the odds-ratio term beside the SFT loss (0.1 usual)."""
    loss_type: str = "sigmoid"
    """DPO loss: ``sigmoid`` (the DPO paper), ``ipo``, ``hinge``, ``robust``... (TRL's names)."""


@dataclass
class RunConfig:
    """Everything a fine-tuning run needs."""

    method: str = "lora"
    """``lora``, ``qlora`` (4-bit base) or ``full``."""
    objective: str = "sft"
    """``sft`` learns the answers of the data; ``dpo`` or ``orpo`` learn from preference pairs
    (data with chosen and rejected answers, e.g. exported from a review). On top of an SFT run,
    set ``model.adapter`` to it."""
    run_name: str | None = None
    """Name of the run directory; ``None`` makes one from the time."""
    output_dir: str = "runs"
    """Workspace holding one directory per run."""
    num_processes: int = 1
    """Processes (GPUs) to train on; more than 1 launches through ``accelerate``."""
    distributed_strategy: str = "ddp"
    """With several processes: ``ddp`` (data parallel) or ``fsdp`` (sharded, full fine-tuning)."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Experiment trackers: none, or tensorboard, wandb, trackio, mlflow (several: a list).
    Their local files go in the run's tracker/ folder; tokens stay in the environment."""
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    preference: PreferenceSettings = field(default_factory=PreferenceSettings)

    @property
    def is_preference(self) -> bool:
        """Whether the run learns from preference pairs (``dpo`` or ``orpo``)."""
        return self.objective in ("dpo", "orpo")

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
        """Build a config from nested dicts; unknown keys and wrong types raise ConfigError.

        The error also lists what :meth:`validate` finds wrong with the other fields, so one
        attempt shows every problem.
        """
        problems: list[ConfigProblem] = []
        config = build(cls, data or {}, "", problems)
        if problems:
            raise ConfigError(_with_validation(problems, config), source)
        return config

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read a YAML config; every problem is reported with its field name.

        Raises :class:`ConfigError` for a file that cannot be read, YAML that does not parse,
        duplicate keys, unknown keys and wrong types, listing with them every other field
        :meth:`validate` finds wrong. A config whose types are right loads even when some
        values are invalid (the Config screen opens it to fix them): :meth:`check` refuses it.
        """
        p = Path(path)
        source = str(p)
        data, problems = read_config(p)
        config = build(cls, data or {}, "", problems)
        if problems:
            raise ConfigError(_with_validation(problems, config), source)
        return config

    # --- validation ----------------------------------------------------------------------

    def validate(self) -> list[ConfigProblem]:
        """Every problem of the config with its field and fix, errors and warnings (see
        :attr:`ConfigProblem.severity`); empty when valid."""
        out: list[ConfigProblem] = []
        nonfinite = _check_numbers(self, out)

        def bad(name: str, message: str, fix: str, severity: str = "error") -> None:
            if name not in nonfinite:  # already reported as not a finite number
                out.append(ConfigProblem(name, message, fix, severity))

        if self.method not in METHODS:
            bad("method", f"{quote(self.method)} is not a method.", f"Use one of {', '.join(METHODS)}.")
        out.extend(_preference_problems(self, nonfinite))
        if self.run_name is not None:
            problem = _run_name_problem(self.run_name)
            if problem:
                bad("run_name", problem,
                    "Give one folder name such as my-run (letters, digits, '-' and '_'); the run "
                    "directory is made under output_dir. Remove run_name to name it from the time.")
        if not self.output_dir.strip() or "\0" in self.output_dir:
            bad("output_dir", "is empty." if not self.output_dir.strip() else "holds a NUL character.",
                "Give the workspace directory, e.g. runs.")
        if self.num_processes < 1:
            bad("num_processes", "must be at least 1.", "Use 1 for a single GPU or CPU.")
        if self.distributed_strategy not in ("ddp", "fsdp"):
            bad("distributed_strategy", f"{quote(self.distributed_strategy)} is unknown.", "Use ddp or fsdp.")
        elif self.distributed_strategy == "fsdp" and self.method != "full":
            bad("distributed_strategy", "fsdp shards full fine-tuning only.",
                "Use ddp for lora and qlora, or set method: full.")
        report_to = [name.strip() for name in self.report_to]
        unknown = [name for name in report_to if name not in ("none", *TRACKERS)]
        if unknown:
            bad("report_to", f"{', '.join(repr(n) for n in unknown)} is not a tracker.",
                f"Use none, or one or more of {', '.join(TRACKERS)}.")
        elif "none" in report_to and len(report_to) > 1:
            bad("report_to", "names none together with trackers.",
                "Remove none, or give none alone for no tracker.")
        if not self.model.name_or_path.strip():
            bad("model.name_or_path", "is empty.", f"Use a hub id, a directory or {BUNDLED_MODEL}.")
        if self.model.attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            bad("model.attn_implementation", f"{quote(self.model.attn_implementation)} is not an "
                "attention implementation transformers knows.",
                f"Use one of {', '.join(ATTENTION_IMPLEMENTATIONS)} (sdpa unless you installed "
                "flash-attn).")
        if self.lora.r < 1:
            bad("lora.r", f"rank {self.lora.r} must be at least 1.", "Start with 8 or 16.")
        if self.lora.lora_alpha <= 0:
            bad("lora.lora_alpha", "must be positive.", "Use about 2x the rank.")
        if not 0 <= self.lora.lora_dropout < 1:
            bad("lora.lora_dropout", "must be in [0, 1).", "Use 0.05.")
        if self.method != "full" and not self.lora.target_modules:
            bad("lora.target_modules", "is empty.", "Name modules such as q_proj and v_proj.")
        o = self.optim
        if not o.learning_rate > 0:
            bad("optim.learning_rate", f"{o.learning_rate} must be positive.",
                "Use 2e-4 for LoRA or 2e-5 for full fine-tuning.")
        elif o.learning_rate > USUAL_MAX_LEARNING_RATE.get(self.method, math.inf):
            bad("optim.learning_rate",
                f"{o.learning_rate:g} is far above the usual range for {self.method} (up to "
                f"{USUAL_MAX_LEARNING_RATE[self.method]:g}); training will likely diverge.",
                "Use 2e-4 for LoRA or 2e-5 for full fine-tuning, or keep it if you mean it.",
                "warning")
        if o.lr_scheduler_type not in SCHEDULERS:
            bad("optim.lr_scheduler_type", f"{quote(o.lr_scheduler_type)} is unknown.",
                f"Use one of {', '.join(SCHEDULERS)}.")
        if not 0 <= o.warmup_ratio < 1:
            bad("optim.warmup_ratio", "must be in [0, 1).", "Use 0.05-0.1.")
        if o.weight_decay < 0:
            bad("optim.weight_decay", "must not be negative.", "Use 0.01.")
        if o.max_steps == 0 or o.max_steps < -1:
            bad("optim.max_steps", "must be positive, or -1 to train by epochs.", "Use -1.")
        if o.max_steps > 0 and 0 <= o.warmup_ratio < 1 and math.ceil(o.warmup_ratio * o.max_steps) >= o.max_steps:
            # transformers warms up over ceil(ratio x steps) steps from 0: with no step after
            # the warm-up, the first step trains at learning rate 0 (max_steps 1: nothing).
            bad("optim.warmup_ratio",
                f"{o.warmup_ratio:g} of {o.max_steps} step{'s' if o.max_steps != 1 else ''} is all warm-up: "
                "the learning rate never reaches its value and the first step trains at learning rate 0"
                + (", so this run trains nothing." if o.max_steps == 1 else "."),
                "Set warmup_ratio to 0, or train more steps.", "warning")
        if o.max_steps == -1 and not o.num_train_epochs > 0:
            bad("optim.num_train_epochs", "must be positive.", "Use 1-3 epochs.")
        if o.per_device_train_batch_size < 1:
            bad("optim.per_device_train_batch_size", "must be at least 1.",
                "Use 1-8 and raise gradient_accumulation_steps instead.")
        if o.gradient_accumulation_steps < 1:
            bad("optim.gradient_accumulation_steps", "must be at least 1.", "Use 1.")
        if o.max_grad_norm <= 0:
            bad("optim.max_grad_norm", "must be positive.", "Use 1.0.")
        if not 0 <= o.seed <= MAX_SEED:
            bad("optim.seed", f"{o.seed} is out of range: seeds go from 0 to {MAX_SEED}.",
                "Use 42, or any whole number from 0 to 4294967295.")
        if o.time_budget.strip():
            from core.timing import parse_duration

            try:
                parse_duration(o.time_budget)
            except ValueError as exc:
                bad("optim.time_budget", str(exc), "Use e.g. 30m or 2h, or leave it empty for none.")
        if o.precision not in PRECISIONS:
            bad("optim.precision", f"{quote(o.precision)} is unknown.", f"Use one of {', '.join(PRECISIONS)}.")
        d = self.data
        if not d.sources and not d.path.strip():
            bad("data.path", "is empty.", f"Give a dataset file or {SAMPLE_DATASET}.")
        if d.format not in DATA_FORMATS:
            bad("data.format", f"{quote(d.format)} is unknown.", f"Use one of {', '.join(DATA_FORMATS)}.")
        if not d.split.strip():
            bad("data.split", "is empty.", "Use train.")
        out.extend(_source_problems(d))
        template_problem = _chat_template_problem(d.chat_template)
        if template_problem:
            bad("data.chat_template", *template_problem)
        if d.max_length < 16:
            bad("data.max_length", f"{d.max_length} tokens is too short.", "Use 512-2048.")
        if not 0 <= d.validation_fraction < 1:
            bad("data.validation_fraction", "must be in [0, 1).", "Use 0.1.")
        if d.on_bad_rows not in ("drop", "stop"):
            bad("data.on_bad_rows", f"{quote(d.on_bad_rows)} is unknown.", "Use drop or stop.")
        e = self.eval
        for name in ("eval_steps", "save_steps", "logging_steps", "per_device_eval_batch_size"):
            if getattr(e, name) < 1:
                bad(f"eval.{name}", "must be at least 1.", "Use a positive whole number.")
        if e.max_rows < 0:
            bad("eval.max_rows", "must not be negative.", "Use 0 for the whole split, or e.g. 64.")
        if e.early_stopping_patience < 0:
            bad("eval.early_stopping_patience", "must not be negative.", "Use 3, or 0 to disable.")
        if e.save_total_limit < 1:
            bad("eval.save_total_limit", "must be at least 1.", "Use 3.")
        if e.keep_best and e.save_steps % max(e.eval_steps, 1):
            bad("eval.save_steps", "must be a multiple of eval_steps when keep_best is on.",
                f"Set save_steps to {e.eval_steps}.")
        out.extend(p for p in _forgetting_problems(self) if p.field not in nonfinite)
        return out

    def errors(self) -> list[ConfigProblem]:
        """The problems of :meth:`validate` that stop a run (warnings left out)."""
        return [p for p in self.validate() if p.is_error]

    def check(self, source: str = "") -> None:
        """Raise ConfigError listing every error, if any; ``source`` names the file.
        Warnings do not raise: :meth:`validate` returns them for the caller to show."""
        problems = self.errors()
        if problems:
            raise ConfigError(problems, source)


def _preference_problems(config: RunConfig, nonfinite: set[str]) -> list[ConfigProblem]:
    """Problems of ``objective`` and ``preference``, and of data a preference run cannot read."""
    out: list[ConfigProblem] = []
    p = config.preference
    if config.objective not in OBJECTIVES:
        out.append(ConfigProblem("objective", f"{quote(config.objective)} is not an objective.",
                                 "Use sft (learn the answers), dpo or orpo (learn from "
                                 "preference pairs)."))
    if "preference.beta" not in nonfinite and not p.beta > 0:
        out.append(ConfigProblem("preference.beta", f"{p.beta} must be positive.",
                                 "Use 0.1 (0.01-0.5 is the usual range)."))
    if p.loss_type not in DPO_LOSS_TYPES:
        out.append(ConfigProblem("preference.loss_type", f"{quote(p.loss_type)} is not a DPO loss.",
                                 f"Use sigmoid, or one of {', '.join(DPO_LOSS_TYPES[1:])}."))
    elif config.objective == "orpo" and p.loss_type != "sigmoid":
        out.append(ConfigProblem("preference.loss_type", "applies to dpo only; ORPO has one loss.",
                                 "Set it back to sigmoid, or use objective: dpo.", "warning"))
    if not config.is_preference:
        return out
    d = config.data
    if d.sources:
        out.append(ConfigProblem("data.sources", f"{config.objective} reads one preference "
                                 "dataset; a mix of sources is for SFT.",
                                 "Give the preference file as data.path and remove data.sources."))
    if d.format not in ("auto", "preference"):
        out.append(ConfigProblem("data.format", f"is {d.format}, but {config.objective} trains on "
                                 "preference pairs (prompt, chosen, rejected).",
                                 "Set data.format: auto (or preference), with a preference dataset "
                                 "as data.path."))
    return out


def _source_problems(d: DataConfig) -> list[ConfigProblem]:
    """Problems of ``data.sources``: each source's fields, and weights on all or none."""
    out: list[ConfigProblem] = []
    if not d.sources:
        return out
    for name in ("dataset", "revision"):
        if getattr(d, name) is not None:
            out.append(ConfigProblem(f"data.{name}", "is set beside data.sources, which replaces "
                                     "data.path.", f"Move it into the source it belongs to "
                                     f"(data.sources[N].{name})."))
    if d.format != "auto":
        out.append(ConfigProblem("data.format", "is set beside data.sources.",
                                 "Set format in each source (data.sources[N].format)."))
    for i, s in enumerate(d.sources):
        where = f"data.sources[{i}]"
        if not s.path.strip():
            out.append(ConfigProblem(f"{where}.path", "is empty.",
                                     "Give a file, a directory or a Hub id."))
        if s.format not in DATA_FORMATS:
            out.append(ConfigProblem(f"{where}.format", f"'{s.format}' is unknown.",
                                     f"Use one of {', '.join(DATA_FORMATS)}."))
        if not s.split.strip():
            out.append(ConfigProblem(f"{where}.split", "is empty.", "Use train."))
        if s.weight is not None and not (math.isfinite(s.weight) and s.weight > 0):
            out.append(ConfigProblem(f"{where}.weight", f"{s.weight} must be a positive number.",
                                     "Use a share such as 0.8 (weights are relative)."))
        if s.max_rows is not None and s.max_rows < 1:
            out.append(ConfigProblem(f"{where}.max_rows", "must be at least 1.",
                                     "Use a row count, or remove it to take every row."))
    weighted = [s.weight is not None for s in d.sources]
    if any(weighted) and not all(weighted):
        missing = ", ".join(f"data.sources[{i}]" for i, w in enumerate(weighted) if not w)
        out.append(ConfigProblem("data.sources", f"some sources have a weight and {missing} "
                                 "has none, so their shares are undefined.",
                                 "Give every source a weight, or none (every row of each)."))
    return out


def _forgetting_problems(cfg: RunConfig) -> list[ConfigProblem]:
    """Problems of the forgetting guard's fields (``eval.general_*``, ``eval.drift_threshold``,
    ``data.replay``); non-finite numbers are reported by the caller."""
    out: list[ConfigProblem] = []
    e, replay = cfg.eval, cfg.data.replay
    if e.general_sample < 0:
        out.append(ConfigProblem("eval.general_sample", "must not be negative.",
                                 "Use 32, or 0 to turn drift off."))
    if not 1 <= e.general_max_new_tokens <= 1024:
        out.append(ConfigProblem("eval.general_max_new_tokens", "must be between 1 and 1024.",
                                 "Use 48; longer answers cost generation time once per model."))
    if not e.drift_threshold > 0:
        out.append(ConfigProblem("eval.drift_threshold", f"{e.drift_threshold} must be a "
                                 "positive number.", "Use 0.3 (loss per token)."))
    if not 0 <= replay <= 0.5:
        out.append(ConfigProblem("data.replay", f"{replay} must be a share between 0 and 0.5.",
                                 "Use 0.05-0.2, or 0 for no replay."))
    elif replay > 0 and cfg.is_preference:
        out.append(ConfigProblem("data.replay", f"mixes answers in as SFT rows, and a {cfg.objective} "
                                 "run trains on preference pairs only.",
                                 "Set data.replay 0 (drift is still measured), or objective sft."))
    if e.general_sample > 0 and cfg.data.validation_fraction == 0:
        out.append(ConfigProblem("eval.general_sample", "drift is measured at evaluations, and "
                                 "data.validation_fraction 0 holds out no rows, so it is not "
                                 "measured.", "Hold out rows (data.validation_fraction 0.1), or "
                                 "set eval.general_sample 0.", "warning"))
    if e.general_sample > 0 or replay > 0:
        text = e.general_prompts.strip()
        if not text:
            out.append(ConfigProblem("eval.general_prompts", "is empty.",
                                     f"Use {GENERAL_PROMPTS} or a prompts file."))
        elif text.startswith("sample:"):
            from core.data.sources import SAMPLES  # lazy: the data package imports config

            if text.removeprefix("sample:") not in SAMPLES:
                out.append(ConfigProblem("eval.general_prompts", f"{quote(text)} is not a "
                                         "bundled sample.", f"Use {GENERAL_PROMPTS}."))
        elif not Path(text).expanduser().is_file():
            out.append(ConfigProblem("eval.general_prompts", f"{quote(text)} is not a file.",
                                     f"Give a prompts file (JSONL of messages ending in a user "
                                     f"turn), or {GENERAL_PROMPTS}."))
    return out


def _chat_template_problem(value: str) -> tuple[str, str] | None:
    """``(message, fix)`` when ``data.chat_template`` names no template, else ``None``."""
    from core.data.templates import template_problem  # lazy: the data package imports config

    return template_problem(value)


def _with_validation(problems: list[ConfigProblem], config: RunConfig) -> list[ConfigProblem]:
    """``problems`` of reading a config, and the errors :meth:`RunConfig.validate` finds in
    the fields that were read (a field already named keeps only its first problem)."""
    named = {p.field for p in problems}
    return problems + [p for p in config.errors() if p.field not in named]


def _run_name_problem(name: str) -> str:
    """Why ``name`` is not one folder name; empty when it is."""
    if not name.strip():
        return "is empty."
    if "\0" in name:
        return "holds a NUL character."
    if "/" in name or "\\" in name:
        kind = "an absolute path" if name.startswith(("/", "\\")) else "a path"
        return (f"{quote(name)} is {kind}, not one folder name; a path can put the run "
                "directory outside the workspace.")
    if name in (".", ".."):
        return f"{quote(name)} names a folder that already exists, not a new run directory."
    if any(ord(c) < 32 for c in name):
        return f"{quote(name)} holds a control character (a tab or a line break)."
    if len(name.encode("utf-8")) > 200:
        return "is longer than 200 bytes; file systems refuse such folder names."
    return ""


def _check_numbers(config: Any, out: list[ConfigProblem], prefix: str = "") -> set[str]:
    """Append a problem for every float field that is not finite and every whole number out
    of any sensible range; the fields named."""
    named: set[str] = set()
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            named |= _check_numbers(value, out, f"{name}.")
            continue
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        if float in kinds and isinstance(value, float) and not math.isfinite(value):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append(ConfigProblem(name, f"{value} is not a finite number.",
                                     f"Give a number, e.g. {default}." if default is not None
                                     else "Give a number."))
            named.add(name)
        elif int in kinds and isinstance(value, int) and abs(value) > MAX_INT and name != "optim.seed":
            out.append(ConfigProblem(name, f"{quote(value)} is far too "
                                     f"{'large' if value > 0 else 'small'}.",
                                     f"Give a whole number below {MAX_INT:,}; the default is "
                                     f"{f.default}."))
            named.add(name)
    return named


