"""Every command an error (or hint) of the CLI suggests works (issue 15).

Each case in ``SUGGESTION_CASES`` drives one CLI path that prints a command in backticks,
does what the message asks besides the command (free the disk, delete a checkpoint), then runs
each suggested command in the same setup and checks that it does not fail the same way. A
suggestion that names a command which does not exist (``huggingface-cli`` once) or a path
that is not there fails here. Add a case for each new message that suggests a command.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import tiny_run_config

from core.config import RunConfig
from core.events import CheckpointSaved, StepLogged
from tui.cli import main

COMMAND = re.compile(r"`([a-z][\w.-]* [^`]+)`")
"""A suggested command: a program name and its arguments in backticks (the program must be
installed: ``huggingface-cli login`` was suggested long after huggingface_hub dropped it)."""


@dataclass
class Setup:
    """What a case works with: a scratch directory, the tiny model and data, pytest's fixtures."""

    tmp: Path
    model: Path
    data: Path
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture
    disk_full: bool = False

    def config(self, **changes) -> Path:
        """A tiny run config file (8 steps, a checkpoint every 2) with ``changes`` applied."""
        cfg = tiny_run_config(self.model, self.data, max_steps=8)
        cfg.eval.eval_steps = cfg.eval.save_steps = 2
        cfg.eval.logging_steps = 1
        cfg.output_dir = str(self.tmp / "runs")
        for name, value in changes.items():
            setattr(cfg, name, value)
        path = self.tmp / "run.yaml"
        cfg.save(path)
        return path

    def copy_of_stopped_run(self) -> Path:
        """A copy of a run stopped at step 4 of 8, with complete checkpoints 2 and 4."""
        stopped = self.request.getfixturevalue("stopped_run")  # trained once, for the cases that ask
        target = self.tmp / "runs" / stopped.name
        shutil.copytree(stopped, target)
        return target

    def tunetop(self, *argv: str) -> tuple[int, str]:
        """``tunetop ARGV`` in this process: exit code and everything it printed."""
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out + err


@dataclass(frozen=True)
class SuggestionCase:
    """One CLI path whose message suggests commands."""

    name: str
    provoke: Callable[[Setup], tuple[int, str]]
    """Run the failing command; its exit code and output."""
    failure: str | None
    """Words that mark the failure (None: the command succeeds and only hints)."""
    follow_advice: Callable[[Setup, str], None] | None = None
    """Do what the message asks besides the commands (free the disk...)."""
    finish: Callable[[Setup], None] | None = None
    """Wait for what the case started (a detached worker)."""
    trains: bool = False
    """Whether the case trains the tiny model (marked slow)."""


# --- the cases -------------------------------------------------------------------------------


def interrupt_at_checkpoint(setup: Setup, step: int) -> None:
    """Press Ctrl-C (a real SIGINT to this process) once the checkpoint of ``step`` is saved."""
    from core.engine import Engine

    emit = Engine.emit

    def emit_then_interrupt(self, event):
        emit(self, event)
        if isinstance(event, CheckpointSaved) and event.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    setup.monkeypatch.setattr(Engine, "emit", emit_then_interrupt)


def stopped_with_ctrl_c(setup: Setup) -> tuple[int, str]:
    run = setup.copy_of_stopped_run()
    interrupt_at_checkpoint(setup, 6)
    return setup.tunetop("train", "--resume", str(run))


def fill_disk_at_step(setup: Setup, step: int) -> None:
    """Saving the checkpoint of ``step`` fails for want of space while ``setup.disk_full``."""
    from transformers import Trainer

    real = Trainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        if setup.disk_full and self.state.global_step == step:
            raise OSError(errno.ENOSPC, "No space left on device", f"{output_dir}/optimizer.pt")
        return real(self, output_dir)

    setup.disk_full = True
    setup.monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", save)


def disk_full(setup: Setup) -> tuple[int, str]:
    run = setup.copy_of_stopped_run()
    fill_disk_at_step(setup, 6)
    return setup.tunetop("train", "--resume", str(run))


def free_the_disk(setup: Setup, message: str) -> None:  # noqa: ARG001
    setup.disk_full = False


def unsafe_pickle(setup: Setup) -> tuple[int, str]:
    import torch

    run = setup.copy_of_stopped_run()
    # A pickle that names a function: torch refuses it with weights_only=True.
    torch.save({"state": os.getcwd}, run / "checkpoints" / "checkpoint-4" / "optimizer.pt")
    return setup.tunetop("train", "--resume", str(run))


def delete_the_named_checkpoint(setup: Setup, message: str) -> None:  # noqa: ARG001
    named = re.search(r"delete (\S+) and resume", message)
    assert named, message
    shutil.rmtree(named.group(1))


def resume_without_checkpoint(setup: Setup) -> tuple[int, str]:
    run = setup.copy_of_stopped_run()
    shutil.rmtree(run / "checkpoints")
    return setup.tunetop("train", "--resume", str(run))


def unknown_hub_model(setup: Setup) -> tuple[int, str]:
    path = setup.config()
    cfg = RunConfig.load(path)
    cfg.model.name_or_path = "tunetop-tests/no-such-model"
    cfg.save(path)
    return setup.tunetop("estimate", str(path))


def attach_a_workspace(setup: Setup) -> tuple[int, str]:
    from core.events import RunStarted

    run = setup.tmp / "runs" / "a-run"
    run.mkdir(parents=True)
    RunConfig(run_name="a-run").save(run / "config.yaml")
    (run / "events.jsonl").write_text(RunStarted(
        run_dir=str(run), run_name="a-run", model="m", method="lora", device="cpu",
        precision="fp32", total_steps=8, num_train_rows=8, num_val_rows=0, trainable_params=1,
        total_params=2).to_json() + "\n")
    return setup.tunetop("attach", str(setup.tmp / "runs"))


def detached_run(setup: Setup) -> tuple[int, str]:
    import core.detach

    # The worker itself is tests/core/test_cli.py's; this one exits at once, which
    # follow_run reports as a run that ended without a final event.
    setup.monkeypatch.setattr(core.detach, "worker_command",
                              lambda *args, **kwargs: [sys.executable, "-c", "pass"])
    return setup.tunetop("train", str(setup.config(run_name="background")), "--detach")


def wait_for_the_worker(setup: Setup) -> None:
    from core.detach import follow_run

    final = list(follow_run(setup.tmp / "runs" / "background", poll_interval=0.1))[-1]
    assert type(final).__name__ == "RunFailed", final


SUGGESTION_CASES = [
    SuggestionCase("stopped with ctrl-c: resume", stopped_with_ctrl_c, "Stopped at step 7",
                   trains=True),
    SuggestionCase("disk full while saving: resume", disk_full, "The disk is full",
                   follow_advice=free_the_disk, trains=True),
    SuggestionCase("unsafe pickle in a checkpoint: delete it, resume", unsafe_pickle,
                   "holds pickled objects other than tensors",
                   follow_advice=delete_the_named_checkpoint, trains=True),
    SuggestionCase("resume without a checkpoint: start over", resume_without_checkpoint,
                   "has no complete checkpoint in", trains=True),
    SuggestionCase("model not found: log in", unknown_hub_model, "Could not load"),
    SuggestionCase("attach to a workspace: attach its run", attach_a_workspace,
                   "is not a run directory"),
    SuggestionCase("detached run: attach, stop", detached_run, None, finish=wait_for_the_worker),
]


# --- running a suggestion ------------------------------------------------------------------


def run_suggestion(setup: Setup, command: str) -> tuple[int, str]:
    """Run one suggested command as the user would; exit code and output."""
    argv = shlex.split(command)
    if argv[0] == "tunetop":
        return setup.tunetop(*argv[1:])
    if argv[:3] == ["hf", "auth", "login"]:
        argv.append("--help")  # logging in needs a token and the network; the command must exist
    program = shutil.which(argv[0], path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    assert program, f"{argv[0]} is not installed: the suggestion `{command}` cannot work"
    done = subprocess.run([program, *argv[1:]], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_model_dir, small_data) -> Path:
    """Trained to step 4 of 8 and stopped there, with complete checkpoints 2 and 4."""
    from core.engine import Engine

    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=8)
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    cfg.eval.logging_steps = 1
    engine: Engine

    def stop_at_step_3(event):
        if isinstance(event, StepLogged) and event.step == 3:
            engine.stop()

    engine = Engine(cfg, stop_at_step_3, workspace=tmp_path_factory.mktemp("stopped") / "runs")
    final = engine.run()
    assert type(final).__name__ == "RunStopped" and final.step == 4, final
    checkpoints = sorted(p.name for p in (engine.run_dir / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]
    return engine.run_dir


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.trains else []) for c in SUGGESTION_CASES])
def test_a_suggested_command_works(case, request, tmp_path, tiny_model_dir, small_data,
                                   monkeypatch, capsys, keep_signal_handlers):
    import tui.cli.attach

    attached = []
    # The app itself is tested elsewhere; here, that attach finds a run it can open.
    monkeypatch.setattr(tui.cli.attach, "run_app", lambda app: attached.append(app) or 0)
    setup = Setup(tmp_path, Path(tiny_model_dir), Path(small_data), request, monkeypatch, capsys)
    monkeypatch.chdir(tmp_path)
    code, text = case.provoke(setup)
    if case.failure is not None:
        assert code != 0 and case.failure in text, text
    commands = COMMAND.findall(text)
    assert commands, f"no command suggested in:\n{text}"
    assert "weights_only=False" not in text
    if case.follow_advice is not None:
        case.follow_advice(setup, text)
    for command in commands:
        again, output = run_suggestion(setup, command)
        assert again == 0, f"`{command}` failed ({again}):\n{output}"
        if case.failure is not None:
            assert case.failure not in output, f"`{command}` failed the same way:\n{output}"
    if "tunetop attach" in " ".join(commands):
        assert attached and attached[-1].attach_dir.is_dir()
    if case.finish is not None:
        case.finish(setup)


def test_the_command_pattern_finds_suggestions_only():
    text = ("Stopped at step 4; resume with `tunetop train --resume runs/a b`. Fix: log in with "
            "`hf auth login`, or `touch runs/a/STOP`; set `optim.seed` to 42 (`42`).")
    assert COMMAND.findall(text) == ["tunetop train --resume runs/a b", "hf auth login",
                                     "touch runs/a/STOP"]
