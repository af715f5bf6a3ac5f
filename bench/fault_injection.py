"""Kill a training run with SIGKILL again and again, resume it each time, and report.

Each trial starts the run as a detached worker (fresh the first time, ``--resume`` after),
then kills its whole process group with SIGKILL at a moment chosen by the trial's mode:

- ``step``: a random 0-0.3 s after a random training step;
- ``save``: as soon as a checkpoint is being written (its ``.saving-checkpoint-N`` directory
  appears), so the kill lands in the middle of the write;
- ``setup``: a random 0.2-3 s after the launch, often while data and model load.

The first launch trains until its first checkpoint is complete before its kill is armed, so
that every kill is followed by a resume.

Before every resume the script finds the newest complete checkpoint itself (a
``checkpoint-N`` directory whose trainer state says step N and whose weights load) and
checks that the resumed run starts from exactly that step. After the last kill the run must
finish. Printed: trials, kills by mode, kills that landed during a write, resumes, resumes
from the right checkpoint, and failures.

    python bench/fault_injection.py [--kills 12] [--seed 0] [--max-steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from core.config import RunConfig  # noqa: E402
from core.detach import launch_detached  # noqa: E402
from core.events import TERMINAL_EVENTS, RunFinished, RunStarted, StepLogged, read_events  # noqa: E402
from core.rundir import (  # noqa: E402
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    EVENTS_FILE,
    STAGING_PREFIX,
    checkpoint_step,
)
from core.runs import read_pid  # noqa: E402

MODES = ("step", "save", "setup")


@dataclass
class Report:
    """What happened over all trials."""

    trials: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {m: 0 for m in MODES})
    kills_during_write: int = 0
    resumes: int = 0
    resumes_training: int = 0
    """Resumes that got as far as training (the others were killed while loading)."""
    resumes_from_newest_complete: int = 0
    failures: list[str] = field(default_factory=list)
    finished: bool = False
    final_step: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The report as printed."""
        return [
            f"trials                      {self.trials}",
            f"SIGKILLs                    {sum(self.kills.values())} "
            + "(" + ", ".join(f"{m} {n}" for m, n in self.kills.items()) + ")",
            f"  landed during a write     {self.kills_during_write}",
            f"resumes                     {self.resumes}",
            f"  that reached training     {self.resumes_training}",
            f"  from the newest complete  {self.resumes_from_newest_complete}",
            f"run finished                {self.finished} (step {self.final_step})",
            f"failures                    {len(self.failures)}",
            *[f"  - {f}" for f in self.failures],
            f"wall time                   {self.seconds:.0f} s",
        ]


def newest_complete(run_dir: Path) -> int:
    """The step of the newest checkpoint that is whole, checked independently of the engine."""
    best = 0
    for path in (run_dir / CHECKPOINTS_DIR).glob(f"{CHECKPOINT_PREFIX}*"):
        step = checkpoint_step(path)
        if step is None or step <= best:
            continue
        try:
            state = json.loads((path / "trainer_state.json").read_text())
            weights = next(path.glob("*.safetensors"))
            from safetensors import safe_open

            with safe_open(str(weights), "pt") as f:
                list(f.keys())
        except (OSError, ValueError, StopIteration):
            continue
        if state.get("global_step") == step and (path / "optimizer.pt").is_file():
            best = step
    return best


def _events(run_dir: Path) -> list:
    path = run_dir / EVENTS_FILE
    return read_events(str(path))[0] if path.exists() else []


def _kill_group(run_dir: Path) -> None:
    pid = read_pid(run_dir)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass


def _wait_gone(run_dir: Path, timeout: float = 30) -> None:
    pid = read_pid(run_dir)
    deadline = time.time() + timeout
    while pid and time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)


def _run_ended(run_dir: Path, seen: int) -> bool:
    return any(isinstance(e, TERMINAL_EVENTS) for e in _events(run_dir)[seen:])


def _staging(run_dir: Path, since: float) -> list[Path]:
    """Checkpoint writes in progress, begun after ``since`` (older ones are a crash's leftovers)."""
    found = []
    for path in (run_dir / CHECKPOINTS_DIR).glob(f"{STAGING_PREFIX}*"):
        try:
            if path.stat().st_mtime >= since:
                found.append(path)
        except FileNotFoundError:  # published meanwhile
            pass
    return found


def _kill_when(run_dir: Path, mode: str, seen: int, since: float, rng: random.Random,
               deadline: float) -> bool:
    """Kill at the mode's moment; False when the run ended first (nothing was killed)."""
    if mode == "setup":
        time.sleep(rng.uniform(0.2, 3.0))
    elif mode == "step":
        target = rng.randint(1, 4)
        while time.time() < deadline:
            steps = [e for e in _events(run_dir)[seen:] if isinstance(e, StepLogged)]
            if len(steps) >= target:
                break
            if _run_ended(run_dir, seen):
                return False
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
    else:  # save: poll fast for a write in progress
        while time.time() < deadline and not _staging(run_dir, since):
            if _run_ended(run_dir, seen):
                return False
            time.sleep(0.002)
    if _run_ended(run_dir, seen):
        return False
    _kill_group(run_dir)
    return True


def inject(config: RunConfig, workspace: Path, kills: int = 12, seed: int = 0,
           timeout: float = 900) -> Report:
    """Run ``config`` to the end through ``kills`` SIGKILLs and resumes; returns the report."""
    rng = random.Random(seed)
    report = Report()
    started = time.time()
    deadline = started + timeout
    run_dir: Path | None = None
    expected_start = 0
    while time.time() < deadline:
        report.trials += 1
        launched = time.time() - 1  # mtimes have coarse resolution on some filesystems
        resumed = run_dir is not None
        if run_dir is None:
            run_dir, seen = launch_detached(config, workspace), 0
            while time.time() < deadline and not newest_complete(run_dir) and not _run_ended(run_dir, 0):
                time.sleep(0.1)
        else:
            seen = len(_events(run_dir))
            launch_detached(config, workspace, resume_dir=run_dir)
            report.resumes += 1
        killed = False
        if sum(report.kills.values()) < kills:
            mode = MODES[(report.trials - 1) % len(MODES)]
            killed = _kill_when(run_dir, mode, seen, launched, rng, deadline)
            if killed:
                report.kills[mode] += 1
                _wait_gone(run_dir)
                report.kills_during_write += bool(_staging(run_dir, launched))
        if not killed:
            while time.time() < deadline and not _run_ended(run_dir, seen):
                time.sleep(0.1)
            _wait_gone(run_dir)
        new = _events(run_dir)[seen:]
        start = next((e for e in new if isinstance(e, RunStarted)), None)
        if resumed and start is not None:
            report.resumes_training += 1
            if start.resumed_from_step == expected_start:
                report.resumes_from_newest_complete += 1
            else:
                report.failures.append(f"trial {report.trials}: resumed from step "
                                       f"{start.resumed_from_step}, newest complete was {expected_start}")
        final = [e for e in new if isinstance(e, TERMINAL_EVENTS)]
        if final:
            if isinstance(final[-1], RunFinished):
                report.finished, report.final_step = True, final[-1].step
            else:
                report.failures.append(f"trial {report.trials}: {type(final[-1]).__name__}: "
                                       f"{getattr(final[-1], 'reason', '')}")
            break
        expected_start = newest_complete(run_dir)
    report.seconds = time.time() - started
    return report


def fault_config(model: str, data: str, max_steps: int) -> RunConfig:
    """Full fine-tuning of a tiny model, a checkpoint every 3 steps (bigger, frequent writes)."""
    from helpers import tiny_run_config

    cfg = tiny_run_config(model, data, max_steps=max_steps, learning_rate=1e-3)
    cfg.method, cfg.run_name = "full", "faults"
    cfg.eval.logging_steps = 1
    cfg.eval.eval_steps = cfg.eval.save_steps = 3
    cfg.eval.save_total_limit = 2
    return cfg


def main() -> int:
    """Build a tiny model, run the trials, print the report; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=60)
    args = parser.parse_args()
    from helpers import make_tiny_model

    from core.data import resolve_data_path
    from core.models import ensure_bundled_model

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(Path(tmp, "tiny"), ensure_bundled_model())
        data = Path(tmp, "tickets.jsonl")
        rows = resolve_data_path("sample:support-tickets").read_text().splitlines()[:96]
        data.write_text("\n".join(rows) + "\n")
        cfg = fault_config(str(model), str(data), args.max_steps)
        report = inject(cfg, Path(tmp, "runs"), kills=args.kills, seed=args.seed)
    print("\n".join(report.lines()))
    return 0 if report.finished and not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
