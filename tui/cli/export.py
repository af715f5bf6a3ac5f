"""``tunetop export RUN``: the adapter, a merged model, a GGUF with an Ollama Modelfile, or an
upload to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui.cli.subcommand import Subcommand

DIRECTORY = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}
"""Completes a folder name (``shtab.DIRECTORY``, spelled out: shtab loads only to complete)."""

OUTTYPES = ("auto", "f32", "f16", "bf16", "q8_0")
"""As :data:`core.export.OUTTYPES` (not imported: building the parser stays light)."""


class Export(Subcommand):
    """Export a run with :mod:`core.export`."""

    name = "export"
    help = "Export a run: adapter, merged model, GGUF + Ollama Modelfile, or to the Hub."
    description = (
        "Export a run's final model, or one checkpoint (--checkpoint N, or the checkpoint "
        "folder as RUN). Default: the LoRA adapter. --merge: a standalone model in the base "
        "model's dtype. --gguf: a GGUF of the merged model with an Ollama Modelfile. "
        "--push-to-hub ORG/NAME: upload the adapter (or, with --merge, the merged model) "
        "with its model card; the token comes from HF_TOKEN or `hf auth login`."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The run, what to export, and where."""
        run = parser.add_argument("run_dir", metavar="RUN", help="Run directory, or a checkpoint folder of one.")
        run.complete = DIRECTORY  # type: ignore[attr-defined]  (read by shtab)
        parser.add_argument("--checkpoint", metavar="N", default=None,
                            help="Export checkpoint N of the run instead of its final model.")
        parser.add_argument("--merge", action="store_true", help="Save a standalone merged model.")
        parser.add_argument("--gguf", action="store_true",
                            help="Write a GGUF of the merged model and an Ollama Modelfile.")
        parser.add_argument("--outtype", choices=OUTTYPES, default=None,
                            help="GGUF weights: auto (the model's dtype), f32, f16, bf16 or q8_0.")
        parser.add_argument("--dtype", default=None,
                            help="Merged weights: auto (the base model's), bfloat16, float16 or float32.")
        parser.add_argument("--max-shard-size", default=None, metavar="SIZE",
                            help="Split merged weights into files of at most SIZE (e.g. 2GB).")
        parser.add_argument("--push-to-hub", metavar="ORG/NAME", default=None,
                            help="Upload to this Hugging Face Hub repository (created if needed).")
        parser.add_argument("--private", action="store_true", help="With --push-to-hub: a private repository.")
        parser.add_argument("--out", default=None, help="Output directory (default: inside the run).")

    def run(self, args: argparse.Namespace) -> int:
        """Export; 1 with the reason when the run cannot be exported, 2 for bad options."""
        problem = _option_problem(args)
        if problem:
            print(f"tunetop export: {problem}", file=sys.stderr)
            return 2
        return export_main(args.run_dir, args.out, args.merge, gguf=args.gguf,
                           outtype=args.outtype or "auto", checkpoint=args.checkpoint,
                           dtype=args.dtype, max_shard_size=args.max_shard_size,
                           push_to_hub=args.push_to_hub, private=args.private)


def _option_problem(args: argparse.Namespace) -> str:
    """Why these options do not go together, with the fix; empty when they do."""
    if args.gguf and args.push_to_hub:
        return ("--gguf and --push-to-hub go separately. Fix: write the GGUF with --gguf, or "
                "push the adapter (or --merge) with --push-to-hub.")
    if args.outtype and not args.gguf:
        return f"--outtype {args.outtype} is for GGUF files. Fix: add --gguf."
    if args.private and not args.push_to_hub:
        return "--private is for --push-to-hub. Fix: add --push-to-hub ORG/NAME."
    if args.push_to_hub and args.out:
        return "--push-to-hub uploads without writing --out. Fix: drop --out, or export locally first."
    if (args.dtype or args.max_shard_size) and not (args.merge or args.gguf):
        return "--dtype and --max-shard-size are for merged models. Fix: add --merge."
    if args.max_shard_size and args.gguf:
        return "--max-shard-size is for merged models; a GGUF is one file. Fix: drop it."
    return ""


class _Progress:
    """Prints each phase once on stderr, and a percentage on a terminal."""

    def __init__(self) -> None:
        self.phase = ""
        self.tty = sys.stderr.isatty()

    def __call__(self, phase: str, fraction: float | None) -> None:
        if phase == "done":
            if self.tty and self.phase:
                print(file=sys.stderr)
            return
        if phase != self.phase:
            if self.tty and self.phase:
                print(file=sys.stderr)
            self.phase = phase
            print(f"{phase}…", end="" if self.tty else "\n", file=sys.stderr, flush=True)
        if self.tty and fraction is not None:
            print(f"\r{phase}… {fraction:4.0%}", end="", file=sys.stderr, flush=True)


def _default_out(run: Path, kind: str, checkpoint: str | None) -> Path:
    """``RUN/export-KIND`` (``-checkpoint-N`` for a checkpoint), beside ``final/``."""
    from core.rundir import CHECKPOINTS_DIR, checkpoint_step

    step = checkpoint_step(run) if run.parent.name == CHECKPOINTS_DIR else None
    if step is not None:
        run, checkpoint = run.parent.parent, str(step)
    elif run.name == "final" and (run.parent / "config.yaml").is_file():
        run = run.parent
    return run / (f"export-{kind}" + (f"-checkpoint-{checkpoint}" if checkpoint is not None else ""))


def export_main(run_dir: str, out: str | None, merge: bool, *, gguf: bool = False,
                outtype: str = "auto", checkpoint: str | None = None, dtype: str | None = None,
                max_shard_size: str | None = None, push_to_hub: str | None = None,
                private: bool = False) -> int:
    """``tunetop export``: 0 on success, 1 with a clear message otherwise."""
    from core.export import (
        ExportError,
        export_adapter,
        export_gguf,
        export_merged,
        push_to_hub as upload,
    )
    from core.export.common import dir_size
    from core.machine import format_bytes

    run = Path(run_dir)
    progress = _Progress()
    kind = "gguf" if gguf else "merged" if merge else "adapter"
    target = Path(out) if out else _default_out(run, kind, checkpoint)
    try:
        if push_to_hub:
            url = upload(run, push_to_hub, private=private, merge=merge, checkpoint=checkpoint,
                         dtype=dtype, max_shard_size=max_shard_size, progress=progress)
            print(f"uploaded {'merged model' if merge else 'adapter'} to {url}")
            return 0
        if gguf:
            result = export_gguf(run, target, checkpoint=checkpoint, outtype=outtype, progress=progress)
            if result.note:
                print(result.note)
            print(f"exported GGUF ({result.outtype}, {format_bytes(dir_size(result.gguf))}) to {result.gguf}")
            print(f"Ollama Modelfile: {result.modelfile}; run it with:")
            for command in result.commands:
                print(f"  {command}")
            return 0
        if merge:
            path, note = export_merged(run, target, checkpoint=checkpoint, dtype=dtype,
                                       max_shard_size=max_shard_size, progress=progress)
            if note:
                print(note)
        else:
            path = export_adapter(run, target, checkpoint=checkpoint, progress=progress)
    except ExportError as exc:
        print(f"tunetop export: {exc}", file=sys.stderr)
        return 1
    print(f"exported {'merged model' if merge else 'adapter'} ({format_bytes(dir_size(path))}) to {path}")
    return 0
