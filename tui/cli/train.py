"""``tunetop train CONFIG.yaml``: train headless with a progress bar (or ``--detach``).

``--resume RUN_DIR`` continues a stopped or crashed run; ``--from RUN_DIR`` trains longer
after a finished one, as a new run that starts from its final weights (a finished run is
never resumed: it would train past its schedule and overwrite its output).
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.config import RunConfig
from tui.cli.subcommand import Subcommand, print_config_warnings

EXIT_FINISHED, EXIT_FAILED, EXIT_STOPPED = 0, 1, 130
"""Exit statuses of a followed run by its final event."""
EXIT_REFUSED = 2
"""Nothing was started: the command asked for something the run cannot do (the message says
what to run instead)."""


class Train(Subcommand):
    """Train from a YAML config in this process, or detached in its own."""

    name = "train"
    help = "Train headless from a YAML config."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The config, or ``--resume RUN_DIR``, or ``--from RUN_DIR``; ``--workspace``; ``--detach``."""
        parser.add_argument("config", nargs="?",
                            help="YAML run config (not needed with --resume; optional with --from).")
        start = parser.add_mutually_exclusive_group()
        start.add_argument("--resume", metavar="RUN_DIR",
                           help="Continue a stopped or crashed run from its latest checkpoint.")
        start.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                           help="Train longer: a new run that starts from this finished run's final "
                                "weights, with a fresh schedule (its settings, or CONFIG's).")
        # SUPPRESS: without the option here, the top-level `tunetop --workspace DIR train` holds.
        parser.add_argument("--workspace", default=argparse.SUPPRESS,
                            help="Directory holding the runs (default: the config's output_dir).")
        parser.add_argument("--detach", action="store_true",
                            help="Start the run in its own process session, print its directory and "
                                 "return (follow it with `tunetop attach RUN_DIR`).")

    def run(self, args: argparse.Namespace) -> int:
        """Train; the exit status of the run's final event."""
        return train_main(args.config, args.workspace, args.resume, args.detach, args.from_run)


def train_main(config_path: str | None, workspace: str | None, resume: str | None = None,
               detach: bool = False, from_run: str | None = None) -> int:
    """Train with a progress bar; non-zero exit on failure.

    The runs go under ``workspace``, or the config's ``output_dir`` without one. One process
    trains here; ``num_processes`` above 1 (or ``detach``) starts a detached run through
    :func:`core.detach.launch_detached`, which this follows unless ``detach``. A resume of a
    run that is live, finished or has no complete checkpoint, or ``from_run`` of an unfinished
    run, prints why and what to run instead and exits with ``EXIT_REFUSED``.
    """
    from rich.console import Console

    from core.rundir import CONFIG_FILE, RunRefused
    from core.runs import check_not_live, check_resumable, train_longer_config

    if resume and config_path:
        print("tunetop train: --resume continues the run with its own config.yaml; give no "
              "CONFIG.yaml with it.", file=sys.stderr)
        return 2
    if not (config_path or resume or from_run):
        print("tunetop train: give a CONFIG.yaml, --resume RUN_DIR or --from RUN_DIR.", file=sys.stderr)
        return 2
    try:
        if resume:
            check_not_live(resume)
            check_resumable(resume)
            config_path = str(Path(resume) / CONFIG_FILE)
        if from_run:
            settings = RunConfig.load(config_path) if config_path else None
            config = train_longer_config(from_run, settings)
        else:
            config = RunConfig.load(config_path)
    except RunRefused as exc:
        print(f"tunetop train: {exc.reason}\nFix: {exc.fix}", file=sys.stderr)
        return EXIT_REFUSED
    config.check(config_path or str(Path(from_run) / CONFIG_FILE))
    print_config_warnings(config, "train")
    workspace = workspace or config.output_dir
    console = Console(stderr=True, soft_wrap=True)
    if detach or config.num_processes > 1:
        return _train_detached(config, workspace, resume, detach, console)
    from core.noise import hold_library_output

    noise = hold_library_output()  # before torch loads: its warnings go to the run's debug.log
    try:
        return _train_here(config, workspace, resume, console)
    finally:
        noise.release()


def _train_here(config: RunConfig, workspace: str, resume: str | None, console) -> int:
    """Train in this process, showing its events; the exit status of its final event."""
    from core.engine import Engine

    events: queue.Queue = queue.Queue()
    engine = Engine(config, events.put, workspace=workspace, resume_dir=resume)

    def request_stop(signum, frame):  # noqa: ARG001
        console.print("[yellow]Stopping after this step and saving a checkpoint…[/]")
        engine.stop()

    _on_stop_signals(request_stop)
    engine.start()

    def stream():
        while True:
            try:
                yield events.get(timeout=0.5)
            except queue.Empty:
                if not engine.running and events.empty():
                    return

    code = _print_events(stream(), console)
    engine.join()
    return code


def _on_stop_signals(handler) -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def _train_detached(config: RunConfig, workspace: str, resume: str | None, detach: bool, console) -> int:
    """Launch the run in its own session (through accelerate for several processes)."""
    from rich.text import Text

    from core.detach import follow_run, launch_detached, request_stop
    from core.models import ModelError

    try:
        run_dir = launch_detached(config, workspace, resume_dir=resume)
    except OSError as exc:
        from core.failures import describe_failure

        reason, fix = describe_failure(exc, "setup")
        console.print(Text(f"tunetop train: could not start the run: {reason}"
                           + (f" Fix: {fix}" if fix else ""), style="red"))
        return 1
    except (ValueError, ModelError) as exc:
        console.print(Text(f"tunetop train: could not start the run: {exc}", style="red"))
        return 1
    how = (f"{config.num_processes} processes through accelerate launch"
           if config.num_processes > 1 else "one process")
    console.print(f"run {run_dir}: detached, {how}; its output goes to {run_dir / 'worker.log'}")
    if detach:
        console.print(f"Follow it with `tunetop attach {run_dir}`; stop it there or with "
                      f"`touch {run_dir / 'STOP'}`.")
        return 0

    def stop_run(signum, frame):  # noqa: ARG001
        console.print("[yellow]Stopping after this step and saving a checkpoint…[/]")
        request_stop(run_dir)

    _on_stop_signals(stop_run)
    return _print_events(follow_run(run_dir), console)


def _print_events(events: Iterable[Any], console) -> int:
    """Show a run's events as a progress bar and lines, with the alerts the Train screen
    would raise (overfitting, forgetting...); the exit code of its final event.

    The bar's ETA is the run's own (:meth:`core.runs.RunProgress.eta_seconds`: steps and the
    evaluations still due), not rich's speed estimate, which needs more updates than a
    slow run logs. Setup phases print a line each; an evaluation shows on the bar.
    """
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.text import Text

    from core import events as ev
    from core.alerts import AlertTracker
    from core.rundir import latest_checkpoint
    from core.runs import RunProgress

    run = RunProgress()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[metrics]}"),
        eta_column(run),
        console=console,
        transient=False,
    )
    task = None
    code = EXIT_FAILED
    run_dir: Path | None = None
    alerts = AlertTracker()

    def show_alerts(raised: list) -> None:
        for alert in raised:
            progress.console.print(Text(f"{alert.title}: {alert.detail}",
                                        style="bold red" if alert.level == "error" else "yellow"))

    with progress:
        for event in events:
            raised = alerts.update(event)
            run.update(event)
            if isinstance(event, ev.StepLogged):
                if task is not None:
                    progress.update(
                        task, completed=event.step, total=event.total_steps, description="train",
                        metrics=f"loss {event.loss:.4f} lr {event.learning_rate:.2e} "
                                f"{event.tokens_per_second:,.0f} tok/s",
                    )
                show_alerts(raised)
                continue
            if isinstance(event, ev.EvalProgressed):
                if task is not None:
                    progress.update(task, description=f"eval {event.done}/{event.total}")
                continue
            if isinstance(event, ev.PhaseChanged):
                if event.done == 0 and event.phase not in ev.SAVE_PHASES:
                    progress.console.print(Text(f"{event.message}…", style="dim"))
                continue
            line, style = ev.describe_event(event), ""
            if isinstance(event, ev.RunStarted):
                run_dir = Path(event.run_dir)
                line += f"; directory {event.run_dir}"
                task = progress.add_task("train", total=event.total_steps, metrics="",
                                         completed=event.resumed_from_step)
            elif isinstance(event, ev.MessageLogged):
                style = {"warning": "yellow", "error": "red"}.get(event.level, "dim")
            elif isinstance(event, ev.RunFinished):
                line += f"; train longer with `tunetop train --from {Path(event.output_path).parent}`"
                style, code = "green", EXIT_FINISHED
            elif isinstance(event, ev.RunStopped):
                if event.checkpoint:
                    line += f"; resume with `tunetop train --resume {Path(event.checkpoint).parent.parent}`"
                style, code = "yellow", EXIT_STOPPED
            elif isinstance(event, ev.RunFailed):
                style, code = "red", EXIT_FAILED
                # A fix that ends in resuming gets the command that does it.
                if run_dir is not None and "resume" in event.suggestion \
                        and latest_checkpoint(run_dir) is not None:
                    line += f" Resume with `tunetop train --resume {run_dir}`."
            elif isinstance(event, ev.EvalLogged) and task is not None:
                progress.update(task, description="train")
            progress.console.print(Text(line, style=style))
            if not isinstance(event, (ev.MessageLogged, ev.RunFailed)):  # those lines say it already
                show_alerts(raised)
    return code


def eta_column(run: Any) -> Any:
    """A rich progress column showing ``run``'s ETA (steps and evaluations), counting down."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from core.runs import format_duration

    class EtaColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            eta = run.eta_seconds()
            return Text(f"ETA {format_duration(eta) if eta is not None else '-:--:--'}",
                        style="progress.remaining")

    return EtaColumn()
