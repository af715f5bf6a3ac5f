"""The fine-tuning engine: TRL ``SFTTrainer`` (or ``DPOTrainer`` / ``ORPOTrainer`` for
preference pairs) with LoRA, QLoRA or full fine-tuning.

The engine runs in a background thread and reports only through typed events (see
``core.events``), which go to the caller's sink and to ``events.jsonl`` in the run directory.
Lifecycle: :meth:`Engine.setup`, :meth:`Engine.train`, :meth:`Engine.cleanup`, driven by
:meth:`Engine.start` (thread) or :meth:`Engine.run` (foreground).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from core import general_setup
from core.callbacks import AllStepsTrained, EventCallback
from core.config import ConfigError, ConfigProblem, RunConfig
from core.failures import describe_failure, is_out_of_memory
from core.noise import LibraryOutput, hold_library_output, quiet_libraries
from core.budget import BudgetKeeper
from core.timing import (cached_throughput, describe_duration, epoch_steps, general_rows,
                         parse_duration, save_seconds_guess, shape_key)
from core.run_thread import RunThread
from core.rundir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    DEBUG_LOG,
    ERROR_LOG,
    EVENTS_FILE,
    FINAL_DIR,
    RunLock,
    RunRefused,
    adapter_settings,
    checkpoint_step,
    final_from_checkpoint,
    latest_checkpoint,
    make_run_dir,
    remove_staging,
    resolve_adapter,
)
from core.runs import check_resumable, holds_a_run, run_progress
from core.events import (
    Event,
    EventSink,
    MessageLogged,
    PhaseChanged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
)
from core.trainer import RunInputs, fsdp_args, make_trainer, preference_trainer
from core.trackers import apply_tracker_env, missing_packages, point_tensorboard, tracker_names


PROGRESS_SECONDS = 0.5
"""Shortest time between two progress events of one phase."""


class Engine(RunThread):
    """Runs one fine-tuning job and reports it as events.

    Control (``start``, ``stop``, ``save_now``, ``join``, ``running``) is :class:`RunThread`'s.

    ``resume_dir`` continues an existing run from its latest complete checkpoint; ``run_dir``
    uses a directory the caller already made (a detached launcher does) instead of a new one.
    The engine holds the run's :class:`~core.rundir.RunLock` while it trains (under a
    multi-process launch the launcher holds it), refuses a finished run, and makes a new run
    directory only once the data and the model reference have been checked.
    """

    def __init__(
        self,
        config: RunConfig,
        sink: EventSink | None = None,
        workspace: str | Path | None = None,
        resume_dir: str | Path | None = None,
        run_dir: str | Path | None = None,
        whole_split_at_end: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.whole_split_at_end = whole_split_at_end
        """With ``eval.max_rows``, evaluate the whole validation split once training ended
        (a timing probe turns it off)."""
        self.workspace = Path(workspace if workspace is not None else config.output_dir)
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.run_dir: Path | None = Path(run_dir) if run_dir else None
        self._sink = sink
        self._events_file: Any = None
        self._emit_lock = threading.Lock()
        self._trainer: Any = None
        self._callback: EventCallback | None = None
        self._resume_checkpoint: Path | None = None
        self._half_written: list[Path] = []
        """Half-written checkpoints removed before resuming (logged once the log is open)."""
        self._lock: RunLock | None = None
        self._pending: list[Event] | None = []
        """Events emitted before ``events.jsonl`` is open, written to it once it is."""
        self._inputs: RunInputs | None = None
        self._probe: Any = None
        """The general-drift probe (:class:`core.forgetting.GeneralProbe`), when measured."""
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._budget: BudgetKeeper | None = None
        self._noise: LibraryOutput | None = None
        self.phase = "setup"
        self.final_event: Event | None = None

    @property
    def is_main(self) -> bool:
        """Whether this is the main process of a (possibly multi-process) launch."""
        return int(os.environ.get("RANK", "0")) == 0

    # --- events ---------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Append the event to ``events.jsonl`` (flushed) and pass it to the sink."""
        with self._emit_lock:
            if self._events_file is not None:
                self._events_file.write(event.to_json() + "\n")
                self._events_file.flush()
            elif self._pending is not None:
                self._pending.append(event)
            if self._sink is not None:
                self._sink(event)

    def log(self, message: str, level: str = "info") -> None:
        """Emit a line for the log pane."""
        self.emit(MessageLogged(level=level, message=message))

    def enter_phase(self, phase: str, message: str, done: int = 0, total: int = 0) -> None:
        """Say what the run is doing before its first step (or while it writes to disk)."""
        self.emit(PhaseChanged(phase=phase, message=message, done=done, total=total))

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> Event:
        """Setup, train and clean up in the calling thread; returns the terminal event."""
        self._started, self._started_wall = time.monotonic(), time.time()
        # Library warnings and load bars go to debug.log, never to the user's terminal.
        self._noise = hold_library_output()
        try:
            self.setup()
            if self._stop.is_set():
                self.final_event = RunStopped(step=0, reason="Stopped before training began.", checkpoint="")
                self.emit(self.final_event)
            else:
                self.train()
        except BaseException as exc:  # every failure becomes an event, never a dead thread
            step = self._trainer.state.global_step if self._trainer is not None else 0
            phase = self._callback.phase if self._callback is not None else self.phase
            checkpoint = latest_checkpoint(self.run_dir) if self.run_dir is not None else None
            reason, suggestion = describe_failure(exc, phase, self.config, checkpoint)
            if self._events_file is not None:  # only a run this engine writes gets its traceback
                (self.run_dir / ERROR_LOG).write_text(traceback.format_exc())
            self.final_event = RunFailed(step=step, phase=phase, reason=reason, suggestion=suggestion)
            self.emit(self.final_event)
        finally:
            self.cleanup()
        return self.final_event

    def setup(self) -> None:
        """Lock the run directory (a resume, or one a launcher made) and check it may train,
        load and tokenize the data, make a new run's directory, load the model and build the
        trainer.

        Data and model-reference mistakes of a new run fail before its directory exists, so
        they leave no failed run behind; a refused run's ``events.jsonl`` is never written.
        """
        from core import data as data_mod
        from core.machine import resolve_precision, training_device
        from core.models import load_tokenizer

        cfg = self.config
        cfg.check()
        missing = missing_packages(tracker_names(cfg.report_to))
        if missing:
            raise ConfigError([ConfigProblem(
                "report_to", f"the tracker needs {', '.join(missing)}, which is not installed.",
                f"pip install {' '.join(missing)}, or set report_to: none.")])
        quiet_libraries()
        if not self.is_main:
            # Only the main process writes the run directory; the others train and stay quiet.
            self._pending, self._sink = None, None
        if self.resume_dir is not None:
            self.run_dir = self.resume_dir
            self._hold_lock()
            self._resume_checkpoint = check_resumable(self.run_dir)
            self._open_run_dir()
        elif self.run_dir is not None:
            self._hold_lock()
            if self.is_main and holds_a_run(self.run_dir):
                raise RunRefused(f"{self.run_dir} already holds a run; training it again from the "
                                 "start would overwrite its checkpoints and output.",
                                 f"resume it (`tunetop train --resume {self.run_dir}`) or start a "
                                 "new run.")
            self._open_run_dir()
        elif not self.is_main:
            raise ValueError("A multi-process run needs its run directory made by the launcher.")

        self.phase = "data"
        where = cfg.data.path if not cfg.data.sources else f"{len(cfg.data.sources)} sources"
        self.enter_phase("data", f"Loading data from {where}")
        if cfg.is_preference:
            train_ex, val_ex = self._load_preferences(data_mod)
        else:
            loaded = self._load_examples(data_mod)

        self.phase = "model"
        device = training_device()
        precision = resolve_precision(cfg.optim.precision, device)
        self.enter_phase("tokenizer", f"Loading the tokenizer of {cfg.model.name_or_path}")
        tokenizer = load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code, cfg.model.revision)
        chosen = data_mod.resolve_template(cfg.data.chat_template)
        if chosen is not None:
            # saved with the model, so that it is prompted as it was trained
            tokenizer.chat_template = chosen
        info = data_mod.template_info(tokenizer, data_mod.RenderOptions.from_config(cfg.data))
        self.log("Rendering: " + "; ".join(f"{k} {v}" for k, v in info.lines()))
        if cfg.model.trust_remote_code:
            self.log("trust_remote_code is ON: the model's own Python code runs.", level="warning")
        if cfg.model.adapter:
            resolve_adapter(cfg.model.adapter)
        if cfg.is_preference:
            # DPOTrainer / ORPOTrainer render and tokenize the pairs themselves.
            train_rows, val_rows = train_ex, val_ex
        else:
            train_rows, val_rows = self._tokenize(data_mod, tokenizer, loaded)
        if not train_rows:
            raise ValueError("No training row has a trained token. Check the chat template and data.")
        if self.run_dir is None:
            self.phase = "setup"  # making the run directory: its failures name the path
            self._open_run_dir()
            self.phase = "model"
        self._inputs = RunInputs(tokenizer, train_rows, val_rows, precision, device)
        self.enter_phase("model", f"Loading the model {cfg.model.name_or_path} ({cfg.method}, "
                                  f"{precision} on {device})")
        model = self._load_model()
        self._probe, replay = general_setup.prepare(self, model, self._inputs, self._stop)
        self.phase = "model"
        if replay:
            train_rows = train_rows + replay
            self._inputs = dataclasses.replace(self._inputs, train_rows=train_rows)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        # after replay: its rows count in the steps the budget sizes
        self._budget = self._make_budget(self._inputs, save_seconds_guess(trainable, total))
        self.enter_phase("trainer", "Building the trainer")
        self._trainer = self._build_trainer(model, self._inputs)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.emit(
            RunStarted(
                run_dir=str(self.run_dir),
                run_name=self.run_dir.name,
                model=cfg.model.name_or_path,
                method=cfg.method,
                objective=cfg.objective,
                device=device if world < 2 else f"{device} x{world} processes",
                precision=precision,
                total_steps=self._planned_steps(len(train_rows)),
                num_train_rows=len(train_rows),
                num_val_rows=len(val_rows),
                trainable_params=trainable,
                total_params=total,
                resumed_from_step=checkpoint_step(self._resume_checkpoint) if self._resume_checkpoint else 0,
                pid=os.getpid(),
                eval_steps=cfg.eval.eval_steps if val_rows else 0,
                budget_seconds=self._budget.budget_seconds if self._budget else 0.0,
                budget_started_at=self._started_wall if self._budget else 0.0,
                general_prompts=self._probe.prompts if self._probe else 0,
                drift_threshold=cfg.eval.drift_threshold if self._probe else None,
            )
        )

    def _load_examples(self, data_mod: Any) -> Any:
        """The SFT data of the config, read and checked (split once rendered, in
        :meth:`_tokenize`)."""
        cfg = self.config
        loaded = data_mod.load_data(cfg.data, cfg.optim.seed)
        self.log(f"Data: {loaded.name} ({loaded.format_reason})")
        if len(loaded.sources) > 1 or loaded.left_out:
            used = len(loaded.examples)
            for report in loaded.sources:
                self.log(f"Source {report.label}: {report.describe(used)}")
        self._log_dropped(loaded, "rows")
        if not loaded.examples:
            raise ValueError(f"{loaded.name} has no usable rows.")
        return loaded

    def _log_dropped(self, loaded: Any, noun: str) -> None:
        """Warn how many of the read rows (or pairs) were dropped, and why the first was."""
        if loaded.dropped:
            first = next(p for p in loaded.problems if p.severity == "error")
            self.log(f"Dropped {loaded.dropped} of {loaded.total_rows} {noun}; first problem: "
                     f"{first.message}", level="warning")

    def _load_preferences(self, data_mod: Any) -> tuple[list[dict], list[dict]]:
        """The preference pairs of ``data.path`` as TRL conversational rows (``prompt``,
        ``chosen``, ``rejected`` turns), split into training and validation."""
        cfg = self.config
        (spec,) = data_mod.source_specs(cfg.data)
        loaded = data_mod.load_preferences(spec, cfg.data.on_bad_rows)
        self.log(f"Preference data: {loaded.label} ({loaded.format_reason})")
        self._log_dropped(loaded, "pairs")
        if not loaded.preferences:
            raise ValueError(f"{loaded.label} has no usable preference pairs.")
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                for p in loaded.preferences]
        return data_mod.split_examples(rows, cfg.data.validation_fraction, cfg.optim.seed)

    def _hold_lock(self) -> None:
        """Take the run's lock (one trainer per run directory), unless a multi-process
        launcher holds it for every process of the launch."""
        if int(os.environ.get("WORLD_SIZE", "1")) < 2:
            self._lock = RunLock.acquire(self.run_dir)

    def _open_run_dir(self) -> None:
        """Make the run directory (a new run), then start writing it: ``config.yaml``, the
        events held back so far, and the removal of half-written checkpoints (a resume)."""
        if not self.is_main:
            return
        if self.run_dir is None:
            cfg = self.config  # a preference run's name says so: 20261129-093000-lora-dpo
            kind = cfg.method if cfg.objective == "sft" else f"{cfg.method}-{cfg.objective}"
            self.run_dir = make_run_dir(self.workspace, cfg.run_name, kind)
            self._hold_lock()
        if self.resume_dir is None:
            # The saved config names the workspace the run really went to (--workspace
            # overrides output_dir).
            self.config.output_dir = str(self.workspace)
            self.config.save(self.run_dir / CONFIG_FILE)
        else:
            self._half_written = remove_staging(self.resume_dir / CHECKPOINTS_DIR)
        if self._noise is not None:
            self._noise.write_to(self.run_dir / DEBUG_LOG)
        with self._emit_lock:
            self._events_file = open(self.run_dir / EVENTS_FILE, "a", encoding="utf-8")
            for event in self._pending or ():
                self._events_file.write(event.to_json() + "\n")
            self._events_file.flush()
            self._pending = None
        self.log(f"Run directory {self.run_dir}")
        for path in self._half_written:
            self.log(f"Removed {path.name}: a checkpoint a crash left half-written.", level="warning")

    def _make_budget(self, inputs: RunInputs, save_guess: float) -> BudgetKeeper | None:
        """The keeper of ``optim.time_budget``, seeded with a cached probe of this shape
        (``save_guess``: a checkpoint's time until one is measured)."""
        budget = parse_duration(self.config.optim.time_budget)
        if budget is None:
            return None
        longest = max((len(r["input_ids"]) for r in inputs.train_rows + inputs.val_rows), default=0)
        cached = cached_throughput(shape_key(self.config, inputs.device, longest))
        val_tokens = sum(len(r["input_ids"]) for r in inputs.val_rows) / max(len(inputs.val_rows), 1)
        drift = general_rows(self.config, len(inputs.val_rows), val_tokens) if self._probe else 0.0
        keeper = BudgetKeeper(budget, self.config, len(inputs.val_rows), self._cap_steps(len(inputs.train_rows)),
                              self._started, cached, drift, save_guess)
        steps = keeper.initial_steps()
        how = f"{steps} steps from a cached probe" if cached else "steps sized after the first few"
        self.log(f"Time budget {describe_duration(budget)}: {how} (at most {keeper.cap}).")
        return keeper

    def _tokenize(self, data_mod: Any, tokenizer: Any, loaded: Any
                  ) -> tuple[list[dict], list[dict]]:
        """Render every row as :func:`core.data.training_outcome` does (what inspect, estimate
        and the screens report), then split; rows with nothing to learn are dropped, loudly."""
        cfg = self.config
        options = data_mod.RenderOptions.from_config(cfg.data)
        total = len(loaded.examples)
        message = "Tokenizing rows"
        shown = [float("-inf")]

        def progress(done: int) -> None:
            if time.monotonic() - shown[0] >= PROGRESS_SECONDS:
                shown[0] = time.monotonic()
                self.enter_phase("tokenize", message, done, total)

        progress(0)
        # the chosen template is the tokenizer's now; "model" keeps it instead of loading again
        outcome = data_mod.training_outcome(tokenizer, loaded.examples, cfg.data.max_length,
                                            cfg.data.assistant_only_loss, loaded.name,
                                            options=dataclasses.replace(options,
                                                                        chat_template="model"),
                                            keep_rows=True, progress=progress)
        self.enter_phase("tokenize", message, total, total)
        first = outcome.first_error()
        if first is not None and cfg.data.on_bad_rows == "stop":
            raise data_mod.DataError.from_problem(first)
        if outcome.dropped:
            self.log(f"Dropped {outcome.drop_summary()}; first: {first.headline}", level="warning")
        if outcome.chunked:
            self.log(f"{len(outcome.chunked)} text rows longer than max_length "
                     f"{cfg.data.max_length} became {outcome.chunk_rows} rows (data.text_chunking).")
        if outcome.truncated:
            self.log(f"{len(outcome.truncated)} of {outcome.rows} rows are longer than max_length "
                     f"{cfg.data.max_length} and were truncated.", level="warning")
        # split by position, as the examples always were: a row's chunks stay on its side
        train, val = data_mod.split_examples(outcome.training_rows, cfg.data.validation_fraction,
                                             cfg.optim.seed)
        return outcome.trainer_rows(train), outcome.trainer_rows(val)

    def _load_model(self) -> Any:
        """The model to train: the base, with a freshly initialised adapter for (q)lora, or
        with ``model.adapter`` to continue (merged into the base for a full fine-tune)."""
        from transformers import set_seed

        from core.models import load_model

        cfg, inputs = self.config, self._inputs
        # Seed before the adapter is initialised: the Trainer seeds only later, in its __init__.
        set_seed(cfg.optim.seed)
        model = load_model(cfg.model, cfg.method, inputs.precision, inputs.device)
        if cfg.method in ("lora", "qlora"):
            model = self._apply_lora(model)
        elif cfg.model.adapter:
            from peft import PeftModel

            adapter = resolve_adapter(cfg.model.adapter)
            self.log(f"Starting from {cfg.model.name_or_path} with the adapter in {adapter} merged in.")
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        return model

    def _apply_lora(self, model: Any) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

        cfg = self.config
        if cfg.method == "qlora":
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.optim.gradient_checkpointing
            )
        if cfg.model.adapter:
            adapter = resolve_adapter(cfg.model.adapter)
            settings = adapter_settings(adapter)
            self.log(f"Continuing the adapter in {adapter} (rank {settings.get('r')}, modules "
                     f"{', '.join(sorted(settings.get('target_modules') or []))}); its shape "
                     "replaces the lora settings.")
            return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.lora_alpha,
            lora_dropout=cfg.lora.lora_dropout,
            target_modules=list(cfg.lora.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)

    def _planned_steps(self, num_rows: int) -> int:
        """Steps the trainer is built for: the time budget's, else :meth:`_cap_steps`."""
        if self._budget is not None:
            return self._budget.steps
        return self._cap_steps(num_rows)

    def _cap_steps(self, num_rows: int) -> int:
        """``max_steps``, or the steps of ``num_train_epochs`` over ``num_rows``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        o = self.config.optim
        return o.max_steps if o.max_steps > 0 else epoch_steps(self.config, num_rows, world)

    def _build_trainer(self, model: Any, inputs: RunInputs) -> Any:
        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTConfig, SFTTrainer

        from core.models import padding_free_refusal

        cfg, o, e = self.config, self.config.optim, self.config.eval
        has_val = bool(inputs.val_rows)
        trackers = tracker_names(cfg.report_to)
        if trackers and self.is_main:
            apply_tracker_env(trackers, self.run_dir)
        refusal = padding_free_refusal(cfg.model, inputs.device) if o.padding_free else None
        padding_free = o.padding_free and refusal is None
        if refusal:
            self.log(f"Padding-free batches are off: {refusal}. Batches are padded"
                     + (", grouped by length." if o.group_by_length else "."))
        # Length grouping only saves padding; with none left, keep TRL's random order.
        sampling = "group_by_length" if o.group_by_length and not padding_free else "random"
        common = dict(
            output_dir=str(self.run_dir / CHECKPOINTS_DIR),
            learning_rate=o.learning_rate,
            lr_scheduler_type=o.lr_scheduler_type,
            warmup_steps=o.warmup_ratio,
            weight_decay=o.weight_decay,
            num_train_epochs=o.num_train_epochs,
            max_steps=self._budget.steps if self._budget is not None else o.max_steps,
            per_device_train_batch_size=o.per_device_train_batch_size,
            per_device_eval_batch_size=e.per_device_eval_batch_size,
            gradient_accumulation_steps=o.gradient_accumulation_steps,
            max_grad_norm=o.max_grad_norm,
            seed=o.seed,
            data_seed=o.seed,
            bf16=inputs.precision == "bf16",
            fp16=inputs.precision == "fp16",
            use_cpu=inputs.device == "cpu",
            gradient_checkpointing=o.gradient_checkpointing,
            logging_steps=e.logging_steps,
            logging_nan_inf_filter=False,
            eval_strategy="steps" if has_val else "no",
            eval_steps=e.eval_steps,
            save_strategy="steps",
            save_steps=e.save_steps,
            save_total_limit=e.save_total_limit,
            load_best_model_at_end=e.keep_best and has_val,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            report_to=trackers or "none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            **fsdp_args(cfg),
        )
        world = max(int(os.environ.get("WORLD_SIZE", "1")), 1)
        # eval.max_rows: each evaluation during training reads the first rows of the split.
        eval_rows = inputs.val_rows[:e.max_rows] if e.max_rows else inputs.val_rows
        eval_batches = math.ceil(len(eval_rows) / world / e.per_device_eval_batch_size)
        self._callback = EventCallback(
            self.emit, self._stop, self._save, self._take_tokens, e.early_stopping_patience if has_val else 0,
            eval_batches=eval_batches, budget=self._budget, probe=self._probe,
        )
        datasets = dict(
            train_dataset=Dataset.from_list(inputs.train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if has_val else None,
            processing_class=inputs.tokenizer,
            callbacks=[self._callback],
        )
        if cfg.is_preference:
            trainer = preference_trainer(self.config, model, common, datasets, self._load_model,
                                         self.log)
        else:
            args = SFTConfig(
                **common,
                train_sampling_strategy=sampling,
                padding_free=padding_free,
                # Rows arrive truncated to max_length (tokenize_for_training); TRL refuses the
                # limit with padding-free batches, which it cannot truncate.
                max_length=None if padding_free else cfg.data.max_length,
            )
            trainer = make_trainer(SFTTrainer, model=model, args=args, **datasets)
        # The printer writes every log dict to stdout; our events replace it.
        trainer.remove_callback(PrinterCallback)
        if "tensorboard" in trackers:
            point_tensorboard(trainer, self.run_dir)
        return trainer

    def _take_tokens(self) -> int:
        return self._trainer.take_tokens() if self._trainer is not None else 0

    def train(self) -> None:
        """Train to the end, an early stop, or a stop request, then write the final output."""
        trainer, cb = self._trainer, self._callback
        resume = str(self._resume_checkpoint) if self._resume_checkpoint else None
        if resume:
            self.log(f"Resuming from {resume}")
        while True:
            try:
                trainer.train(resume_from_checkpoint=resume)
                break
            except AllStepsTrained as done:
                self._finish_from_checkpoint(Path(resume), done.step)
                return
            except BaseException as exc:
                if not self._can_retry_oom(exc):
                    raise
                trainer, cb, resume = self._retry_smaller(trainer)
        step = trainer.state.global_step
        if cb.stopped_by_request:
            self.final_event = RunStopped(
                step=step, reason="Stopped on request.", checkpoint=cb.last_checkpoint
            )
            self.emit(self.final_event)
            return
        val_rows = self._inputs.val_rows
        if self.whole_split_at_end and val_rows and 0 < self.config.eval.max_rows < len(val_rows):
            from datasets import Dataset

            self.log(f"Evaluating the whole validation split ({len(val_rows)} rows).")
            cb.whole_split = True
            trainer.evaluate(eval_dataset=Dataset.from_list(val_rows))
        cb.phase = "save"
        final = self.run_dir / FINAL_DIR
        self.enter_phase("final", f"Writing the final {'model' if self.config.method == 'full' else 'adapter'}")
        trainer.save_model(str(final))
        trainer.processing_class.save_pretrained(str(final))
        self.final_event = RunFinished(
            step=step,
            output_path=str(final),
            final_eval_loss=cb.last_eval_loss,
            best_eval_loss=cb.best_eval_loss,
            elapsed_seconds=time.monotonic() - self._started,
        )
        self.emit(self.final_event)

    def _finish_from_checkpoint(self, checkpoint: Path, step: int) -> None:
        """The run trained its last step but ended before writing ``final/`` (killed, or
        stopped on that step): write it from the checkpoint instead of training on."""
        cfg = self.config
        self._callback.phase = "save"
        self.log(f"{checkpoint.name} is the last step of the schedule; writing {FINAL_DIR}/ from "
                 "it without training further.")
        final = None
        if self.is_main:
            keep_best = cfg.eval.keep_best and bool(self._inputs.val_rows)
            final = final_from_checkpoint(self.run_dir, checkpoint, keep_best)
        progress = run_progress(self.run_dir)
        self.final_event = RunFinished(
            step=step,
            output_path=str(final or self.run_dir / FINAL_DIR),
            final_eval_loss=progress.eval_loss,
            best_eval_loss=progress.best_eval_loss,
            elapsed_seconds=time.monotonic() - self._started,
        )
        self.emit(self.final_event)

    def _can_retry_oom(self, exc: BaseException) -> bool:
        o = self.config.optim
        return (
            o.retry_on_oom
            and is_out_of_memory(exc)
            and o.per_device_train_batch_size > 1
            and self._callback.phase == "train"
        )

    def _retry_smaller(self, failed: Any) -> tuple[Any, EventCallback, str | None]:
        """Halve the micro-batch, double accumulation, and continue from the last checkpoint.

        The model is reloaded: an out-of-memory error can strike between micro-batches, and
        the weights since the last checkpoint must not leak into the retry.
        """
        import gc

        import torch

        o = self.config.optim
        step = failed.state.global_step
        o.per_device_train_batch_size //= 2
        o.gradient_accumulation_steps *= 2
        self.config.save(self.run_dir / CONFIG_FILE)
        checkpoint = latest_checkpoint(self.run_dir)
        self.log(
            f"Out of memory at step {step + 1}; retrying with micro-batch "
            f"{o.per_device_train_batch_size} x accumulation {o.gradient_accumulation_steps} (same "
            f"effective batch) from {checkpoint.name if checkpoint else 'the start'}.",
            level="warning",
        )
        del failed
        self._trainer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._trainer = self._build_trainer(self._load_model(), self._inputs)
        return self._trainer, self._callback, str(checkpoint) if checkpoint else None

    def cleanup(self) -> None:
        """Close the event log, release the run lock, and the model so memory returns."""
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._trainer = None
        import gc

        gc.collect()
        if self._noise is not None:
            self._noise.release()
            self._noise = None


