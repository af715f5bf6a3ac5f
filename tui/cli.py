"""The ``tunetop`` command: opens the app, or runs a headless sub-command.

Sub-commands import the engine lazily so that opening the app stays fast.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
from pathlib import Path

from core.config import ConfigError, RunConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunetop",
        description="Fine-tune LLMs with LoRA, QLoRA or full SFT from the terminal.",
    )
    parser.add_argument("--config", help="YAML run config to open the app with.")
    parser.add_argument("--dataset", help="Dataset file to open (overrides the config's data.path).")
    parser.add_argument("--workspace", default="runs", help="Directory holding the runs (default: runs).")
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="Train headless from a YAML config.")
    train.add_argument("config", nargs="?", help="YAML run config (not needed with --resume).")
    train.add_argument("--resume", metavar="RUN_DIR", help="Continue a run from its latest checkpoint.")
    train.add_argument("--workspace", default=argparse.SUPPRESS, help="Directory holding the runs.")
    train.add_argument("--detach", action="store_true",
                       help="Start the run in its own process session, print its directory and return "
                            "(follow it with `tunetop attach RUN_DIR`).")

    inspect = sub.add_parser("inspect", help="Check a dataset: format, rows, token lengths, problems.")
    inspect.add_argument("dataset", help="Dataset file, save_to_disk directory or sample:support-tickets.")
    inspect.add_argument("--model", default=None, help="Model reference whose chat template to use.")
    inspect.add_argument("--max-length", type=int, default=None, help="Token budget per row.")

    from core.compare_cli import add_compare_parser

    add_compare_parser(sub)

    estimate = sub.add_parser("estimate", help="Memory estimate for a config; exit 1 if it will not fit.")
    estimate.add_argument("config", help="YAML run config.")
    estimate.add_argument("--longest-tokens", type=int, default=None,
                          help="Longest row in tokens (default: measured on the dataset).")

    attach = sub.add_parser("attach", help="Follow a (detached) run in the app; it can be stopped there.")
    attach.add_argument("run_dir", help="Run directory holding events.jsonl.")

    export = sub.add_parser("export", help="Export a finished run's adapter, or merge it into the base.")
    export.add_argument("run_dir", help="Run directory.")
    export.add_argument("--merge", action="store_true", help="Save a standalone merged model.")
    export.add_argument("--out", default=None, help="Output directory (default: inside the run).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tunetop`` console script."""
    # The tokenizer's own threads would compete with the UI and warn over it after a fork.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return train_main(args.config, args.workspace, args.resume, args.detach)
        if args.command == "inspect":
            from core.inspect_cli import inspect_main

            return inspect_main(args.dataset, args.model, args.max_length)
        if args.command == "compare":
            from core.compare_cli import compare_from_args

            return compare_from_args(args)
        if args.command == "estimate":
            from core.estimate_cli import estimate_main

            return estimate_main(args.config, args.longest_tokens)
        if args.command == "attach":
            from tui.attach import attach_main

            return attach_main(args.run_dir)
        if args.command == "export":
            from core.export import export_main

            return export_main(args.run_dir, args.out, args.merge)
        return app_main(args.config, args.dataset, args.workspace)
    except ConfigError as exc:
        print(f"tunetop: {exc}", file=sys.stderr)
        return 2


def app_main(config_path: str | None, dataset: str | None, workspace: str) -> int:
    """Open the TUI."""
    from tui.app import make_app

    config = RunConfig.load(config_path) if config_path else RunConfig()
    return run_app(make_app(config=config, dataset=dataset, workspace=workspace))


_app_ran = False
"""Set once the TUI ran in this process: :func:`run` then exits without joining threads."""


def run_app(app) -> int:
    """Run a Textual app on a loop of its own; its return code (0 unless it set one).

    ``asyncio.run`` would wait on quit for every thread worker still going, and one still
    importing torch to load a tokenizer holds the quit for seconds. Those workers only read;
    a run training in this process was stopped and joined by the quit action before the app
    exits, so :func:`run` leaves without them.
    """
    global _app_ran
    import asyncio

    _app_ran = True
    loop = asyncio.new_event_loop()
    app.run(loop=loop)
    return app.return_code or 0


def run() -> None:
    """The console script: :func:`main`, then exit (at once after the TUI, see run_app)."""
    code = main()
    if _app_ran:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def train_main(config_path: str | None, workspace: str, resume: str | None = None,
               detach: bool = False) -> int:
    """Train with a progress bar; non-zero exit on failure.

    One process trains here; ``num_processes`` above 1 (or ``detach``) starts a detached run
    through :func:`core.detach.launch_detached`, which this follows unless ``detach``.
    """
    from rich.console import Console

    from core.rundir import CONFIG_FILE

    if resume:
        config_path = str(Path(resume) / CONFIG_FILE)
    elif not config_path:
        print("tunetop train: give a CONFIG.yaml, or --resume RUN_DIR.", file=sys.stderr)
        return 2
    config = RunConfig.load(config_path)
    config.check(config_path)
    console = Console(stderr=True, soft_wrap=True)
    if detach or config.num_processes > 1:
        return _train_detached(config, workspace, resume, detach, console)
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
    from core.detach import follow_run, launch_detached, request_stop

    try:
        run_dir = launch_detached(config, workspace, resume_dir=resume)
    except (OSError, ValueError) as exc:
        console.print(f"[red]tunetop train: could not start the run: {exc}[/]")
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


def _print_events(events, console) -> int:
    """Show a run's events as a progress bar and lines; the exit code of its final event."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from core.events import (
        CheckpointSaved,
        EvalLogged,
        MessageLogged,
        RunFailed,
        RunFinished,
        RunStarted,
        RunStopped,
        StepLogged,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[metrics]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = None
    code = 1
    with progress:
        for event in events:
            if isinstance(event, RunStarted):
                progress.console.print(
                    f"run {event.run_dir}: {event.method} on {event.device} ({event.precision}), "
                    f"{event.num_train_rows} train / {event.num_val_rows} val rows, "
                    f"{event.trainable_params:,} of {event.total_params:,} parameters trainable"
                )
                task = progress.add_task("train", total=event.total_steps, metrics="",
                                         completed=event.resumed_from_step)
            elif isinstance(event, StepLogged) and task is not None:
                progress.update(
                    task, completed=event.step, total=event.total_steps,
                    metrics=f"loss {event.loss:.4f} lr {event.learning_rate:.2e} "
                            f"{event.tokens_per_second:,.0f} tok/s",
                )
            elif isinstance(event, EvalLogged):
                mark = " (best)" if event.is_best else ""
                progress.console.print(f"step {event.step}: validation loss {event.eval_loss:.4f}{mark}")
            elif isinstance(event, CheckpointSaved):
                progress.console.print(f"step {event.step}: checkpoint {event.path}")
            elif isinstance(event, MessageLogged):
                style = {"warning": "yellow", "error": "red"}.get(event.level, "dim")
                progress.console.print(f"[{style}]{event.message}[/]", markup=True, highlight=False)
            elif isinstance(event, RunFinished):
                best = f"{event.best_eval_loss:.4f}" if event.best_eval_loss is not None else "n/a"
                progress.console.print(
                    f"[green]finished[/] at step {event.step} in {event.elapsed_seconds:.0f}s; "
                    f"best validation loss {best}; output {event.output_path}"
                )
                code = 0
            elif isinstance(event, RunStopped):
                progress.console.print(
                    f"[yellow]stopped[/] at step {event.step}; resume with "
                    f"`tunetop train --resume {Path(event.checkpoint).parent.parent}`"
                    if event.checkpoint else f"[yellow]stopped[/] at step {event.step}"
                )
                code = 130
            elif isinstance(event, RunFailed):
                hint = f"\n  Fix: {event.suggestion}" if event.suggestion else ""
                progress.console.print(f"[red]failed[/] during {event.phase}: {event.reason}{hint}")
                code = 1
    return code


if __name__ == "__main__":
    run()
