"""The fine-tuning engine: TRL ``SFTTrainer`` (or ``DPOTrainer`` / ``ORPOTrainer`` for
preference pairs) with LoRA, QLoRA or full fine-tuning.

The engine runs in a background thread and reports only through typed events (see
``core.events``), which go to the caller's sink and to ``events.jsonl`` in the run directory.
Lifecycle: :meth:`Engine.setup`, :meth:`Engine.train`, :meth:`Engine.cleanup`, driven by
:meth:`Engine.start` (thread) or :meth:`Engine.run` (foreground).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.callbacks import AllStepsTrained, EventCallback, NonFiniteError
from core.config import ConfigError, ConfigProblem, RunConfig
from core.noise import LibraryOutput, hold_library_output
from core.timing import BudgetKeeper, cached_throughput, describe_duration, parse_duration, shape_key
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
    checkpoint_name,
    checkpoint_step,
    complete_checkpoints,
    final_from_checkpoint,
    latest_checkpoint,
    make_run_dir,
    publish_checkpoint,
    remove_staging,
    resolve_adapter,
    staging_dir,
)
from core.runs import check_resumable, run_progress
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
from core.trackers import apply_tracker_env, missing_packages, point_tensorboard, tracker_names


@dataclass(frozen=True)
class RunInputs:
    """What :meth:`Engine.setup` settles once and every trainer of the run is built from
    (the first, and each rebuild after an out-of-memory retry)."""

    tokenizer: Any
    train_rows: list[dict]
    """Rows for the trainer: ``input_ids`` and ``labels`` (masked tokens are -100)."""
    val_rows: list[dict]
    """Tokenized validation rows; empty when nothing is held out."""
    precision: str
    """``bf16``, ``fp16`` or ``fp32``, resolved for the device."""
    device: str
    """``cuda`` or ``cpu`` (:func:`core.models.pick_device`)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA or host out-of-memory error."""
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in str(exc).lower()
    )


def nonfinite_settings(config: RunConfig) -> list[str]:
    """Dotted names of the config's numbers that are NaN or infinite (``optim.weight_decay``)."""

    def walk(obj: Any, prefix: str) -> list[str]:
        found: list[str] = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                found += walk(value, f"{prefix}{f.name}.")
            elif isinstance(value, float) and not math.isfinite(value):
                found.append(f"{prefix}{f.name}")
        return found

    return walk(config, "")


def _field(config: RunConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def describe_failure(exc: BaseException, phase: str, config: RunConfig | None = None,
                     checkpoint: Path | None = None) -> tuple[str, str]:
    """A readable reason and a concrete suggestion for an exception raised in ``phase``.

    ``config`` and ``checkpoint`` (the run's newest complete one) let a non-finite failure
    name its cause and say truthfully what is left on disk.
    """
    name = type(exc).__name__
    if isinstance(exc, ConfigError):
        return "; ".join(str(p) for p in exc.problems), "Fix the fields named above and start again."
    if isinstance(exc, RunRefused):
        return exc.reason, exc.fix[:1].upper() + exc.fix[1:]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if isinstance(exc, NonFiniteError):
        # Every checkpoint is written after its step's weights (and validation loss) were
        # checked, so the newest one never holds what went bad.
        kept = (f" Nothing from that step was saved; the last checkpoint, {checkpoint.name}, was "
                "checked before it was written and is intact." if checkpoint is not None
                else " Nothing from that step was saved, and no checkpoint was written before it.")
        bad = nonfinite_settings(config) if config is not None else []
        if bad:
            defaults = RunConfig()
            usual = ", ".join(f"{name} {_field(defaults, name):g}" for name in bad)
            return text + kept, (f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a "
                                 f"finite number: set a real value (the default is {usual}) and "
                                 "start again.")
        return text + kept, ("Lower the learning rate (e.g. halve it) and start again; keep "
                             "max_grad_norm at 1.0, or use fp32.")
    if is_out_of_memory(exc):
        return (
            f"Out of memory during {phase}.",
            "Halve per_device_train_batch_size and double gradient_accumulation_steps (or set "
            "optim.retry_on_oom: true to do it automatically), turn on gradient_checkpointing, "
            "use qlora, or shorten data.max_length.",
        )
    chain = _exception_chain(exc)
    oserror = next((e for e in chain if isinstance(e, OSError)), None)
    where = f" ({oserror.filename})" if oserror is not None and oserror.filename else ""
    # Libraries re-raise a full disk as a plain Exception (tokenizers' save does): the errno
    # is lost, the words remain.
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain) or any(
            "no space left on device" in str(e).lower() for e in chain):
        return (f"The disk is full while writing during {phase}{where}; the last complete "
                "checkpoint is intact.", "Free disk space or lower eval.save_total_limit, then resume.")
    unpickled = _unsafe_pickle(chain)
    if unpickled is not None:
        return unpickled
    writable = ("Set output_dir (or pass --workspace) to a directory on a disk you can "
                "write to.")
    if oserror is not None and oserror.errno == errno.EROFS:
        return f"The workspace is on a read-only file system{where}.", writable
    if isinstance(oserror, PermissionError):
        return f"Permission denied{where or ': ' + text}.", writable
    if isinstance(oserror, (NotADirectoryError, FileExistsError, IsADirectoryError)) and phase == "setup":
        blocker = _file_in_the_way(oserror.filename)
        if blocker is not None:
            return (f"Cannot create the run directory{where}: {blocker} is a file, not a "
                    "directory.", "Set output_dir (or pass --workspace) to a directory, or to a "
                    "path that does not exist yet.")
        return (f"Cannot create the run directory{where}: {oserror.strerror or text}.",
                "Set output_dir to a directory (or a path that does not exist yet) you can write to.")
    return f"{name}: {text}", ""


PROGRESS_SECONDS = 0.5
"""Shortest time between two progress events of one phase."""


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _file_in_the_way(path: str | None) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (a workspace that is one)."""
    if not path:
        return None
    for parent in Path(path).parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def _unsafe_pickle(chain: list[BaseException]) -> tuple[str, str] | None:
    """Reason and fix when ``torch.load`` refused a checkpoint file holding pickled objects
    beyond tensors (it may run code). torch's own text suggests ``weights_only=False``, which
    is exactly what must not be done with a file of unknown origin; it is not repeated."""
    import pickle

    refused = next((e for e in chain if isinstance(e, pickle.UnpicklingError)
                    and "weights only load failed" in str(e).lower()), None)
    if refused is None:
        return None
    path = _loaded_file(refused)
    checkpoint = next((p for p in Path(path).parents if checkpoint_step(p) is not None), None) if path else None
    fix = (f"If you wrote this checkpoint with a trusted tool, save it again; otherwise delete "
           f"{checkpoint or 'that checkpoint'} and resume from an earlier one.")
    return (f"{path or 'A checkpoint file'} holds pickled objects other than tensors, so tunetop "
            "did not load it: loading such a file can run any code.", fix)


def _loaded_file(exc: BaseException) -> str:
    """The path ``torch.load`` was reading when it raised ``exc`` (from its frame), or ""."""
    tb = exc.__traceback__
    found = ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "torch.serialization":
            value = frame.f_locals.get("f")
            if isinstance(value, (str, os.PathLike)):
                found = os.fspath(value)
        tb = tb.tb_next
    return found


def quiet_libraries() -> None:
    """Silence library progress bars; the engine reports progress through events instead.

    Log levels stay as they are: library warnings go to the run's ``debug.log`` (core.noise).
    """
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


class Engine:
    """Runs one fine-tuning job and reports it as events.

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
        self._stop = threading.Event()
        self._save = threading.Event()
        self._thread: threading.Thread | None = None
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

    # --- control, callable from any thread -----------------------------------------------

    def start(self) -> None:
        """Run setup, training and cleanup in a background daemon thread."""
        self._thread = threading.Thread(target=self.run, name="tunetop-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to stop after the current optimizer step, saving a checkpoint."""
        self._stop.set()

    def save_now(self) -> None:
        """Ask for a checkpoint at the end of the current optimizer step."""
        self._save.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

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
            if self.is_main and ((self.run_dir / EVENTS_FILE).exists() or complete_checkpoints(self.run_dir)):
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
            self._open_run_dir()
        self._inputs = RunInputs(tokenizer, train_rows, val_rows, precision, device)
        self.enter_phase("model", f"Loading the model {cfg.model.name_or_path} ({cfg.method}, "
                                  f"{precision} on {device})")
        model = self._load_model()
        replay = self._prepare_general(model)
        self.phase = "model"
        if replay:
            train_rows = train_rows + replay
            self._inputs = dataclasses.replace(self._inputs, train_rows=train_rows)
        # after replay: its rows count in the steps the budget sizes
        self._budget = self._make_budget(self._inputs)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
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
        if loaded.dropped:
            first = next(p for p in loaded.problems if p.severity == "error")
            self.log(f"Dropped {loaded.dropped} of {loaded.total_rows} rows; first problem: "
                     f"{first.message}", level="warning")
        if not loaded.examples:
            raise ValueError(f"{loaded.name} has no usable rows.")
        return loaded

    def _load_preferences(self, data_mod: Any) -> tuple[list[dict], list[dict]]:
        """The preference pairs of ``data.path`` as TRL conversational rows (``prompt``,
        ``chosen``, ``rejected`` turns), split into training and validation."""
        cfg = self.config
        (spec,) = data_mod.source_specs(cfg.data)
        loaded = data_mod.load_preferences(spec, cfg.data.on_bad_rows)
        self.log(f"Preference data: {loaded.label} ({loaded.format_reason})")
        if loaded.dropped:
            first = next(p for p in loaded.problems if p.severity == "error")
            self.log(f"Dropped {loaded.dropped} of {loaded.total_rows} pairs; first problem: "
                     f"{first.message}", level="warning")
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
            self.run_dir = make_run_dir(self.workspace, self.config.run_name, self.config.method)
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

    def _make_budget(self, inputs: RunInputs) -> BudgetKeeper | None:
        """The keeper of ``optim.time_budget``, seeded with a cached probe of this shape."""
        budget = parse_duration(self.config.optim.time_budget)
        if budget is None:
            return None
        longest = max((len(r["input_ids"]) for r in inputs.train_rows + inputs.val_rows), default=0)
        cached = cached_throughput(shape_key(self.config, inputs.device, longest))
        keeper = BudgetKeeper(budget, self.config, len(inputs.val_rows), self._cap_steps(len(inputs.train_rows)),
                              self._started, cached)
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

    def _prepare_general(self, model: Any) -> list[dict]:
        """Ask the base model the general prompts (answers cached per model, template and cap):
        the drift probe of the evaluations, and the replay rows of ``data.replay``, returned."""
        from core import forgetting
        from core.data import DataError, RenderOptions, read_prompts, replay_rows
        from core.models import padding_free_refusal

        cfg, inputs = self.config, self._inputs
        e, share = cfg.eval, cfg.data.replay
        measure = e.general_sample > 0
        if measure and not inputs.val_rows:
            self.log("General drift is measured at each evaluation, and this run holds out no "
                     "validation rows (data.validation_fraction 0), so it is not measured.",
                     level="warning")
            measure = False
        if not measure and share <= 0:
            return []
        tokenizer = inputs.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            self.log("General drift and replay ask the base model through its chat template, "
                     "and this tokenizer has none: set data.chat_template (e.g. chatml) to use "
                     "them.", level="warning")
            return []
        self.phase = "general"
        try:
            prompts, problems = read_prompts(e.general_prompts)
        except DataError as exc:  # named as the field it came from
            message = str(exc).removesuffix(f" Fix: {exc.fix}")
            raise ConfigError([ConfigProblem("eval.general_prompts", message, exc.fix)]) from exc
        if problems:
            self.log(f"{len(problems)} rows of {e.general_prompts} are not prompts and are left "
                     f"out; first: {problems[0]}", level="warning")
        sample, pool = forgetting.split_probe(len(prompts), e.general_sample if measure else 0)
        if measure and len(sample) < e.general_sample:
            self.log(f"{e.general_prompts} has {len(prompts)} prompts, fewer than "
                     f"eval.general_sample {e.general_sample}: drift is measured on all of them.",
                     level="warning")
        wanted = replay_rows(len(inputs.train_rows), share)
        picks = forgetting.replay_picks(pool, wanted, cfg.optim.seed)
        if len(picks) < wanted:
            self.log(f"data.replay {share:g} asks for {wanted} replay rows, and {e.general_prompts} "
                     f"has {len(pool)} prompts besides the drift sample: replay uses those.",
                     level="warning")
        answers = self._base_answers(model, [prompts[i] for i in sample + picks])
        if answers is None:
            return []  # stopped: the run ends before training
        options = dataclasses.replace(RenderOptions.from_config(cfg.data), chat_template="model")
        if measure:
            rows = forgetting.answer_rows(tokenizer, answers[:len(sample)], cfg.data.max_length,
                                          options)
            packed = cfg.optim.padding_free and padding_free_refusal(cfg.model, inputs.device) is None
            if rows:
                self._probe = forgetting.GeneralProbe(
                    rows, math.nan, len(sample), e.per_device_eval_batch_size, packed,
                    inputs.precision, tokenizer.pad_token_id or 0).with_base(model)
                self.log(f"General drift: {len(sample)} prompts of {e.general_prompts}; the base "
                         f"model's loss on its own answers is {self._probe.base_loss:.4f} per "
                         "token.")
            else:
                self.log("General drift is not measured: the base model's answers to the "
                         "general prompts are empty.", level="warning")
        replay = forgetting.answer_rows(tokenizer, answers[len(sample):], cfg.data.max_length,
                                        options)
        if replay:
            # one more source of the mix, reported like data.sources' own
            total = len(inputs.train_rows) + len(replay)
            self.log(f"Source replay (data.replay {share:g}): {len(replay)} rows of the base "
                     f"model's own answers to prompts of {e.general_prompts} join the "
                     f"{len(inputs.train_rows)} task rows ({len(replay) / total:.0%} of the "
                     f"{total} training rows).")
        return replay

    def _base_answers(self, model: Any, prompts: list) -> list | None:
        """The base model's answers to ``prompts``, from the cache or generated now (phase
        ``general``, done/total prompts after each batch); ``None`` when a stop request came
        first."""
        import torch

        from core import forgetting
        from core.generate import GenerationSettings, TextGenerator

        cfg, inputs = self.config, self._inputs
        tokenizer, e = inputs.tokenizer, cfg.eval
        if inputs.device != "cpu" and not getattr(model, "hf_device_map", None):
            # the trainer would move it there next; generating on the CPU would crawl
            rank = int(os.environ.get("LOCAL_RANK", "0"))
            model.to(torch.device(inputs.device, rank) if inputs.device == "cuda" else inputs.device)
        identity = {**forgetting.model_identity(cfg.model, cfg.method, model),
                    "template": tokenizer.chat_template, "eos": tokenizer.eos_token,
                    "system_prompt": cfg.data.default_system_prompt,
                    "max_new_tokens": e.general_max_new_tokens}
        cache = forgetting.AnswerCache(identity)
        generator = TextGenerator(model, tokenizer, None, inputs.device)
        settings = GenerationSettings(max_new_tokens=e.general_max_new_tokens,
                                      batch_size=forgetting.GENERATION_BATCH)
        system = cfg.data.default_system_prompt

        def generate(batch: list) -> list[tuple[str, bool]]:
            turns = [forgetting.generation_prompt(p, system) for p in batch]
            # unstripped: the rows score exactly what the base wrote before its end of turn
            return generator.generate_with_ends(turns, settings, stop=self._stop, strip=False)

        def progress(done: int, total: int) -> None:
            self.enter_phase("general", f"Asking the base model {total} general prompts (at most "
                                        f"{e.general_max_new_tokens} new tokens each, once per "
                                        "base model)", done, total)

        padding, tokenizer.padding_side = tokenizer.padding_side, "left"  # answers follow prompts
        training = model.training
        model.eval()  # no dropout: the base's greedy answers, the same every time
        started = time.monotonic()
        try:
            answers, made = forgetting.base_answers(generate, prompts, cache, progress,
                                                    write=self.is_main, stop=self._stop)
        finally:
            tokenizer.padding_side = padding
            model.train(training)
        if answers is not None:
            where = (f"generated {made} in {time.monotonic() - started:.0f}s, cached in "
                     f"{cache.path.parent}" if made else f"all from the cache in {cache.path.parent}")
            self.log(f"Base answers to {len(prompts)} general prompts: {where}.")
        return answers

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
        o = self.config.optim
        if o.max_steps > 0:
            return o.max_steps
        world = int(os.environ.get("WORLD_SIZE", "1"))
        per_epoch = math.ceil(num_rows / world / o.per_device_train_batch_size / o.gradient_accumulation_steps)
        return max(1, math.ceil(per_epoch * o.num_train_epochs))

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
            **_fsdp_args(cfg),
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
            trainer = self._preference_trainer(model, common, datasets)
        else:
            args = SFTConfig(
                **common,
                train_sampling_strategy=sampling,
                padding_free=padding_free,
                # Rows arrive truncated to max_length (tokenize_for_training); TRL refuses the
                # limit with padding-free batches, which it cannot truncate.
                max_length=None if padding_free else cfg.data.max_length,
            )
            trainer = _make_trainer(SFTTrainer, model=model, args=args, **datasets)
        # The printer writes every log dict to stdout; our events replace it.
        trainer.remove_callback(PrinterCallback)
        if "tensorboard" in trackers:
            point_tensorboard(trainer, self.run_dir)
        return trainer

    def _preference_trainer(self, model: Any, common: dict[str, Any], datasets: dict[str, Any]) -> Any:
        """TRL's ``DPOTrainer`` or ``ORPOTrainer`` over the pairs, with the same arguments,
        callbacks and checkpoints as SFT.

        DPO's reference is the model as training starts: with LoRA, TRL keeps it as a frozen
        copy of the starting adapter (the base for a fresh one, the SFT run's for
        ``model.adapter``), so no second model is loaded; a full fine-tune loads a second copy
        of the starting weights. ORPO needs no reference.
        """
        cfg, p = self.config, self.config.preference
        train_rows = len(datasets["train_dataset"])
        if cfg.objective == "dpo":
            from trl import DPOConfig, DPOTrainer

            args = DPOConfig(**common, beta=p.beta, loss_type=[p.loss_type],
                             max_length=cfg.data.max_length)
            ref_model = None
            if cfg.method == "full":
                self.log("Loading a second copy of the model as DPO's frozen reference.")
                ref_model = self._load_model().eval()
                ref_model.requires_grad_(False)
            trainer = _make_trainer(DPOTrainer, model=model, ref_model=ref_model, args=args, **datasets)
        else:
            import warnings

            with warnings.catch_warnings():  # TRL warns on import that ORPO is experimental
                warnings.simplefilter("ignore")
                from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            args = ORPOConfig(**common, beta=p.beta, max_length=cfg.data.max_length,
                              remove_unused_columns=False)
            trainer = _make_trainer(ORPOTrainer, model=model, args=args, **datasets)
        dropped = train_rows - len(trainer.train_dataset)
        if dropped:
            self.log(f"Dropped {dropped} training pairs whose prompt alone fills max_length "
                     f"{cfg.data.max_length}: nothing of their answers would be trained.",
                     level="warning")
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


def _fsdp_args(cfg: RunConfig) -> dict[str, Any]:
    """Trainer arguments that shard a full fine-tune with FSDP across the launched processes."""
    if cfg.distributed_strategy != "fsdp" or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return {}
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {"use_orig_params": True, "cpu_ram_efficient_loading": True},
    }


def score_trained_positions_only() -> None:
    """Make TRL's fused LM head skip untrained positions on CPU too (idempotent).

    TRL projects only the positions with a label through the LM head on Triton devices; on
    other devices it projects every position so that tile shapes stay fixed for compilers.
    Eager CPU has nothing to recompile, and with assistant-only loss most positions are
    prompt: measured on the bundled model, a step took 0.6x the time. The loss and gradients
    are the same (untrained positions contribute zero either way).
    """
    import trl.trainer.utils as trl_utils

    # A private name: if TRL renames it, runs keep working without the saving, and
    # test_lm_head_scores_only_trained_positions_with_the_same_loss_and_gradients fails.
    use_triton = getattr(trl_utils, "_use_triton", None)
    if use_triton is None or getattr(use_triton, "tunetop", False):
        return

    def compact(device: Any) -> bool:
        return device.type == "cpu" or use_triton(device)

    compact.tunetop = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


def _make_trainer(base: type, **kwargs: Any) -> Any:
    """Build a subclass of the TRL trainer ``base`` (SFT, DPO or ORPO) that counts tokens,
    refuses non-finite values and publishes each checkpoint with one rename."""
    import torch

    score_trained_positions_only()

    class TunetopTrainer(base):
        """The trainer counting non-padding tokens and stopping on the first non-finite value."""

        _tokens = 0

        def take_tokens(self) -> int:
            count, self._tokens = int(self._tokens), 0
            return count

        def training_step(self, model, inputs, num_items_in_batch=None):
            # SFT and DPO batches have one attention mask; ORPO's has one per answer.
            masks = [v for k, v in inputs.items() if k.endswith("attention_mask")]
            self._tokens += (sum(int(m.sum()) for m in masks) if masks
                             else inputs["input_ids"].numel())
            loss = super().training_step(model, inputs, num_items_in_batch)
            if not torch.isfinite(loss).all():
                raise NonFiniteError(
                    f"Loss became {float(loss)} at step {self.state.global_step + 1}; the run "
                    f"stopped before the optimizer step."
                )
            return loss

        def _clip_grad_norm(self, model):
            norm = super()._clip_grad_norm(model)
            if norm is not None and not math.isfinite(float(norm)):
                raise NonFiniteError(
                    f"Gradient norm became {float(norm)} at step {self.state.global_step + 1}; "
                    f"the run stopped before the optimizer step."
                )
            return norm

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            if "ref" in getattr(self.model, "peft_config", {}):
                # DPO's frozen reference adapter: rebuilt from the starting weights at every
                # start, so a copy in each checkpoint and in final/ is only dead weight.
                shutil.rmtree(Path(output_dir or self.args.output_dir) / "ref", ignore_errors=True)

        def _save_checkpoint(self, model, trial):
            """Write the checkpoint in a staging directory, then publish it with one rename."""
            from transformers.trainer import TRAINER_STATE_NAME
            from transformers.trainer_utils import rotate_checkpoints

            callback = next(c for c in self.callback_handler.callbacks if isinstance(c, EventCallback))
            callback.checkpoint_begins(self.state.global_step)
            root, step = self.args.output_dir, self.state.global_step
            staging = staging_dir(root, step)  # one name for every rank: they all write into it
            self.args.output_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # a failed write (disk full) leaves nothing
                raise
            finally:
                self.args.output_dir = root
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                best = self.state.best_global_step
                if best and (best == step or Path(root, checkpoint_name(best)).is_dir()):
                    # The state saved above names the staging path; name the published one.
                    self.state.best_model_checkpoint = str(Path(root, checkpoint_name(best)))
                    self.state.save_to_json(str(staging / checkpoint_name(step) / TRAINER_STATE_NAME))
                publish_checkpoint(staging, step)
                rotate_checkpoints(root, self.args.save_total_limit, self.state.best_model_checkpoint)
            self.accelerator.wait_for_everyone()

    return TunetopTrainer(**kwargs)
