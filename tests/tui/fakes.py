"""Fakes for UI tests: a scripted engine, event series, fake NVML devices and a stub monitor.

``ScriptedEngine`` keeps the real engine's contract (``start``/``stop``/``save_now``/``join``/
``running``/``run_dir``; events to the sink and to ``events.jsonl``) and replays a list of
events from a daemon thread, so screens can be tested without torch. It can also be the
engine of a detached worker: ``python -m core.worker RUN_DIR --engine fakes:ScriptedEngine``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.config import RunConfig
from core.events import (
    TERMINAL_EVENTS,
    CheckpointSaved,
    EvalLogged,
    Event,
    MessageLogged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from core.gpu import GIB, GpuSample
from core.run_thread import RunThread

T0 = 1_700_000_000.0
"""Fixed wall clock for recorded series (2023-11-14), so snapshots do not move."""


# --- event series ------------------------------------------------------------------------


def run_started(run_dir: str = "runs/test-run", total_steps: int = 100, pid: int = 0, t: float = T0) -> RunStarted:
    """A RunStarted for a small LoRA run."""
    return RunStarted(
        run_dir=run_dir, run_name=Path(run_dir).name, model="bundled:smollm2-135m-instruct",
        method="lora", device="cuda", precision="bf16", total_steps=total_steps,
        num_train_rows=800, num_val_rows=80, trainable_params=921_600, total_params=135_436_608,
        pid=pid, time=t,
    )


def step(n: int, loss: float, total: int = 100, lr: float | None = None, grad_norm: float = 0.8,
         t: float | None = None, eta: float | None = None) -> StepLogged:
    """A StepLogged at step ``n`` (one second per step from T0)."""
    return StepLogged(
        step=n, total_steps=total, epoch=round(3 * n / total, 4), loss=loss,
        learning_rate=lr if lr is not None else 2e-4 * (1 - n / (total + 1)),
        grad_norm=grad_norm, tokens_per_second=4200.0, samples_per_second=12.5,
        elapsed_seconds=float(n), eta_seconds=float(total - n) if eta is None else eta, time=t if t is not None else T0 + n,
    )


def loss_curve(n: int) -> float:
    """A plausible, deterministic training loss at step ``n``."""
    return 0.6 + 1.8 * math.exp(-n / 25) + 0.05 * math.sin(n * 1.7)


def training_series(total: int = 100, log_every: int = 5, eval_every: int = 20,
                    run_dir: str = "runs/test-run", end: str = "finished",
                    eval_losses: Iterable[float] | None = None, pid: int = 0) -> list[Event]:
    """A whole recorded run: start, logged steps, evals, checkpoints and a final event."""
    events: list[Event] = [run_started(run_dir, total, pid=pid)]
    evals = list(eval_losses) if eval_losses is not None else None
    best: float | None = None
    k = 0
    for n in range(log_every, total + 1, log_every):
        events.append(step(n, loss_curve(n), total))
        if n % eval_every == 0:
            value = evals[k] if evals is not None and k < len(evals) else 0.7 + 1.5 * math.exp(-n / 30)
            k += 1
            is_best = best is None or value < best
            best = value if is_best else best
            events.append(EvalLogged(step=n, eval_loss=value, best_eval_loss=best, is_best=is_best, time=T0 + n + 0.5))
            events.append(CheckpointSaved(step=n, path=f"{run_dir}/checkpoints/checkpoint-{n}", time=T0 + n + 0.8))
    if end == "finished":
        events.append(RunFinished(step=total, output_path=f"{run_dir}/final", final_eval_loss=best,
                                  best_eval_loss=best, elapsed_seconds=float(total), time=T0 + total + 2))
    elif end == "stopped":
        events.append(RunStopped(step=total, reason="Stopped on request.",
                                 checkpoint=f"{run_dir}/checkpoints/checkpoint-{total}", time=T0 + total + 2))
    return events


def nonfinite_series(run_dir: str = "runs/nan-run") -> list[Event]:
    """A run whose loss turns NaN at step 30 and that the engine then fails."""
    events: list[Event] = [run_started(run_dir, 100)]
    events += [step(n, loss_curve(n)) for n in (5, 10, 15, 20, 25)]
    events.append(step(30, float("nan"), grad_norm=float("inf")))
    events.append(RunFailed(step=30, phase="train",
                            reason="Loss became nan at step 31; the run stopped before the optimizer step, "
                                   "so the last checkpoint is intact.",
                            suggestion="Lower the learning rate (e.g. halve it)."))
    return events


def overfit_series(run_dir: str = "runs/overfit-run") -> list[Event]:
    """Validation loss falls, then rises three evaluations in a row; early stop ends it."""
    events = training_series(total=100, eval_every=20, run_dir=run_dir, end="none",
                             eval_losses=[1.4, 1.1, 1.15, 1.22, 1.31])
    events.append(MessageLogged(level="warning", message="Early stop at step 100: validation loss has not "
                                "improved for 3 evaluations (best 1.1000).", early_stop=True))
    events.append(RunFinished(step=100, output_path=f"{run_dir}/final", final_eval_loss=1.31,
                              best_eval_loss=1.1, elapsed_seconds=100.0, time=T0 + 102))
    return events


def retime(events: Iterable[Event], start: float) -> list[Event]:
    """The same events with wall-clock times shifted to begin at ``start``."""
    events = list(events)
    base = events[0].time
    return [replace(e, time=start + (e.time - base)) for e in events]


# --- scripted engine -----------------------------------------------------------------------


class ScriptedEngine(RunThread):
    """Replays ``script`` from a daemon thread with the real engine's contract (its control
    methods are the real engine's: :class:`core.run_thread.RunThread`).

    ``delay`` is the pause between events; ``hold_after`` makes the run wait after that many
    StepLogged events until :meth:`release` or :meth:`stop` (so a test can act on a live run);
    ``hold_when`` does the same after the first event it returns True for (an evaluation's
    progress, a setup phase).
    ``stop()`` takes effect at the next step: a checkpoint and ``RunStopped`` follow.
    """

    instances: list["ScriptedEngine"] = []
    thread_name = "fake-engine"

    def __init__(self, config: RunConfig, sink: Callable[[Event], None] | None = None,
                 workspace: str | Path = "runs", resume_dir: str | Path | None = None,
                 run_dir: str | Path | None = None, *,
                 script: list[Event] | None = None, delay: float = 0.0, hold_after: int | None = None,
                 write_events: bool = True, restamp: bool = True, stop_latency: float = 0.0,
                 hold_stop: bool = False, hold_when: Callable[[Event], bool] | None = None) -> None:
        super().__init__()
        self.config = config
        self.sink = sink
        self.workspace = Path(workspace)
        self.resume_dir = resume_dir
        delay_env = os.environ.get("FAKE_ENGINE_DELAY")
        self.delay = float(delay_env) if delay_env else delay
        hold_env = os.environ.get("FAKE_ENGINE_HOLD")
        self.hold_after = int(hold_env) if hold_env else hold_after
        # Like the real engine, only the main process of a multi-process launch writes files.
        self.write_events = write_events and os.environ.get("RANK", "0") == "0"
        self.restamp = restamp
        self.hold_when = hold_when
        self.stop_latency = stop_latency
        """Seconds the current step still takes after stop() (to see the stopping state)."""
        self.stop_gate = threading.Event()
        """With ``hold_stop``, a requested stop completes only once this is set."""
        if not hold_stop:
            self.stop_gate.set()
        name = config.run_name or "fake-run"
        self.run_dir: Path = Path(resume_dir or run_dir or self.workspace / name)
        self.script = script if script is not None else training_series(run_dir=str(self.run_dir))
        self.emitted: list[Event] = []
        self._release = threading.Event()
        self._file: Any = None
        ScriptedEngine.instances.append(self)

    def stop(self) -> None:
        """Stop at the next step with a checkpoint (a held run goes on to it)."""
        super().stop()
        self._release.set()

    def release(self) -> None:
        """Let a held run go on."""
        self._release.set()

    def emit(self, event: Event) -> None:
        """To events.jsonl and the sink, like the real engine."""
        self.emitted.append(event)
        if self._file is not None:
            self._file.write(event.to_json() + "\n")
            self._file.flush()
        if self.sink is not None:
            self.sink(event)

    def run(self) -> None:
        """Replay the script, honouring stop and save requests at step ends."""
        if self.write_events:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / "events.jsonl", "a", encoding="utf-8")
        try:
            steps = 0
            last_step = 0
            for event in self.script:
                if isinstance(event, RunStarted):
                    event = replace(event, run_dir=str(self.run_dir), run_name=self.run_dir.name,
                                    pid=os.getpid())
                if self.restamp:
                    event = replace(event, time=time.time())
                self.emit(event)
                if self.hold_when is not None and self.hold_when(event):
                    self.hold_when = None
                    self._release.wait()
                if isinstance(event, StepLogged):
                    steps += 1
                    last_step = event.step
                    if self.hold_after is not None and steps >= self.hold_after:
                        self._release.wait()
                    if self._save.is_set():
                        self._save.clear()
                        self.emit(CheckpointSaved(step=event.step,
                                                  path=str(self.run_dir / "checkpoints" / f"checkpoint-{event.step}")))
                    if self._stop.is_set():
                        time.sleep(self.stop_latency)
                        self.stop_gate.wait()
                        path = str(self.run_dir / "checkpoints" / f"checkpoint-{event.step}")
                        self.emit(CheckpointSaved(step=event.step, path=path))
                        self.emit(RunStopped(step=event.step, reason="Stopped on request.", checkpoint=path))
                        return
                if self.delay:
                    time.sleep(self.delay)
            if self._stop.is_set() and not any(isinstance(e, TERMINAL_EVENTS) for e in self.emitted):
                self.emit(RunStopped(step=last_step, reason="Stopped on request.", checkpoint=""))
        finally:
            if self._file is not None:
                self._file.close()


def engine_factory(script: list[Event] | None = None, **options: Any) -> Callable[..., ScriptedEngine]:
    """An ``AppServices.engine_factory`` that builds ScriptedEngines with ``script``."""

    def build(config: RunConfig, sink: Callable[[Event], None], **kwargs: Any) -> ScriptedEngine:
        return ScriptedEngine(config, sink, script=script, **options, **kwargs)

    return build


def write_events_slowly(path: Path, events: list[Event], delay: float = 0.01) -> Any:
    """Append ``events`` to ``path`` from a thread (a "detached" run); returns the thread."""

    def writer() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for event in events:
                f.write(event.to_json() + "\n")
                f.flush()
                time.sleep(delay)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


# --- GPU --------------------------------------------------------------------------------


class StubGpuMonitor:
    """A monitor that always returns the same sample."""

    def __init__(self, sample: GpuSample) -> None:
        self._sample = sample
        self.pid = sample.pid
        self.calls = 0

    def sample(self) -> GpuSample:
        """The fixed sample."""
        self.calls += 1
        return self._sample


def h100_sample(used_gib: float = 61.2, process_gib: float | None = 58.4) -> GpuSample:
    """A fixed H100 sample for snapshots."""
    return GpuSample(
        available=True, name="NVIDIA H100 80GB HBM3", index=0, used_bytes=int(used_gib * GIB),
        total_bytes=80 * GIB, process_bytes=None if process_gib is None else int(process_gib * GIB),
        utilization_percent=97, temperature_c=64, power_watts=512.0, power_limit_watts=700.0,
        process_rss_bytes=int(6.3 * GIB), system_total_bytes=128 * GIB, pid=4242, time=T0,
    )


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


@dataclass
class FakeDevice:
    """One fake NVML device (or MIG slice)."""

    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 * GIB
    used: int = 40 * GIB
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    util: int | None = 93
    temperature: int | None = 61
    power_mw: int | None = 450_000
    limit_mw: int | None = 700_000
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    mig_slices: list["FakeDevice"] | None = None
    parent: "FakeDevice | None" = None
    index: int = 0


class FakeNvml:
    """pynvml's functions over :class:`FakeDevice` objects; ``init_error`` fails nvmlInit."""

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, devices: list[FakeDevice], init_error: str | None = None) -> None:
        self.devices = devices
        for i, device in enumerate(devices):
            device.index = i
            for mig in device.mig_slices or []:
                mig.parent = device
        self.init_error = init_error
        self.inits = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeDevice:
        return self.devices[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeDevice:
        for device in self.devices:
            if device.uuid == uuid:
                return device
            for mig in device.mig_slices or []:
                if mig.uuid == uuid:
                    return mig
        raise FakeNVMLError("Not Found")

    def nvmlDeviceGetIndex(self, h: FakeDevice) -> int:
        return h.index

    def nvmlDeviceGetName(self, h: FakeDevice) -> str:
        return h.name

    def nvmlDeviceGetMemoryInfo(self, h: FakeDevice) -> Any:
        return SimpleNamespace(total=h.total, used=h.used, free=h.total - h.used)

    def nvmlDeviceGetUtilizationRates(self, h: FakeDevice) -> Any:
        if h.util is None or h.parent is not None:
            raise FakeNVMLError("Not Supported")
        return SimpleNamespace(gpu=h.util, memory=0)

    def nvmlDeviceGetTemperature(self, h: FakeDevice, sensor: int) -> int:
        if h.temperature is None or h.parent is not None:
            raise FakeNVMLError("Not Supported")
        return h.temperature

    def nvmlDeviceGetPowerUsage(self, h: FakeDevice) -> int:
        if h.power_mw is None or h.parent is not None:
            raise FakeNVMLError("Not Supported")
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeDevice) -> int:
        if h.limit_mw is None or h.parent is not None:
            raise FakeNVMLError("Not Supported")
        return h.limit_mw

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeDevice) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in h.processes]

    def nvmlDeviceGetMigMode(self, h: FakeDevice) -> list[int]:
        if h.mig_slices is None:
            raise FakeNVMLError("Not Supported")
        return [1, 1]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: FakeDevice) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeDevice, i: int) -> FakeDevice:
        slices = h.mig_slices or []
        if i >= len(slices):
            raise FakeNVMLError("Not Found")
        return slices[i]

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: FakeDevice) -> FakeDevice:
        if h.parent is None:
            raise FakeNVMLError("Invalid Argument")
        return h.parent

    def nvmlDeviceIsMigDeviceHandle(self, h: FakeDevice) -> bool:
        return h.parent is not None


def full_gpu(pid: int, used_gib: float = 72.0, process_gib: float | None = 70.0) -> FakeNvml:
    """One whole GPU on which ``pid`` holds ``process_gib``."""
    used = None if process_gib is None else int(process_gib * GIB)
    return FakeNvml([FakeDevice(used=int(used_gib * GIB), processes=[(pid, used), (99999, 1 * GIB)])])


def mig_gpu(pid: int) -> FakeNvml:
    """An A100 in MIG mode; the process is on the first 3g.40gb slice without a per-process figure."""
    slice0 = FakeDevice(name="MIG 3g.40gb", total=40 * GIB, used=12 * GIB, processes=[(pid, None)],
                        uuid="MIG-11111111-1111-1111-1111-111111111111")
    slice1 = FakeDevice(name="MIG 3g.40gb", total=40 * GIB, used=1 * GIB,
                        uuid="MIG-22222222-2222-2222-2222-222222222222")
    parent = FakeDevice(name="NVIDIA A100-SXM4-80GB", used=13 * GIB, mig_slices=[slice0, slice1],
                        uuid="GPU-33333333-3333-3333-3333-333333333333")
    return FakeNvml([parent])


def container_gpu() -> FakeNvml:
    """A GPU seen from a container: NVML lists host PIDs, so this process is not among them."""
    return FakeNvml([FakeDevice(used=30 * GIB, processes=[(1234567, 29 * GIB)])])


def no_gpu() -> FakeNvml:
    """A machine without the NVIDIA driver."""
    return FakeNvml([], init_error="NVML Shared Library Not Found")


# --- the demo run used by the snapshot test and screenshots/ --------------------------------

DEMO_RUN = "demo-lora"
DEMO_NOW = T0 + 75.0
"""Frozen "now" of the demo: 75 s after the run started."""


def demo_series() -> list[Event]:
    """A LoRA run logged every 2 steps, evaluated every 20, shown held at step 60 of 100."""
    return training_series(total=100, log_every=2, eval_every=20, run_dir=f"runs/{DEMO_RUN}", end="none")


def demo_services() -> Any:
    """Services for the demo: scripted engine held at step 60, H100 sample, frozen clock."""
    from tui.app import AppServices

    return AppServices(
        in_process=True,
        engine_factory=engine_factory(script=demo_series(), hold_after=30, restamp=False, write_events=False),
        gpu_monitor_factory=lambda: StubGpuMonitor(h100_sample()),
        clock=lambda: DEMO_NOW,
    )


async def demo_run_before(pilot: Any) -> None:
    """Open the training screen, start the demo run and wait until it is drawn at step 60."""
    await pilot.press("3")
    await pilot.pause()
    await pilot.press("s")
    screen = pilot.app.screen
    from tui.widgets.loss_plot import LossPlot

    plot = screen.query_one(LossPlot)
    for _ in range(400):
        if screen.progress.step == 60 and plot.replots and plot.settled:
            break
        await pilot.pause(0.025)
    await pilot.pause()


def drift_series(run_dir: str = "runs/drift-run",
                 drifts: Iterable[float] = (0.05, 0.15, 0.32, 0.45, 0.6)) -> list[Event]:
    """A run whose general drift (threshold 0.3, 32 prompts) rises at each evaluation."""
    drifts = iter(drifts)
    events = []
    for event in training_series(total=100, eval_every=20, run_dir=run_dir):
        if isinstance(event, RunStarted):
            event = replace(event, general_prompts=32, drift_threshold=0.3)
        elif isinstance(event, EvalLogged):
            drift = next(drifts)
            event = replace(event, general_loss=1.2 + drift, general_drift=drift)
        events.append(event)
    return events


def build_app(tmp_path: Path, engine_factory: Any = None, sample: Any = None,
              monitor_factory: Any = None, **kwargs: Any) -> Any:
    """An app on a temporary workspace with a stubbed GPU and an optional fake engine.

    With an engine factory, runs train in the app's process (the fake engine); without, they
    start detached like the real app's.
    """
    from tui.app import AppServices, make_app

    services = AppServices(
        in_process=engine_factory is not None,
        engine_factory=engine_factory,
        gpu_monitor_factory=monitor_factory or (lambda: StubGpuMonitor(sample or h100_sample())),
    )
    config = kwargs.pop("config", None) or RunConfig(run_name="test-run")
    workspace = str(kwargs.pop("workspace", tmp_path / "runs"))
    return make_app(config=config, services=services, workspace=workspace, **kwargs)
