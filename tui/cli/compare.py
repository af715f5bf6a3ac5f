"""``tunetop compare``: generate a blind review set headless, to judge later in the app.

For users who generate on the GPU box and review elsewhere (or later)::

    tunetop compare --a base --b runs/lora-1 --prompts sample:support-tickets-heldout

writes ``runs/lora-1/review/<name>/`` (``--out`` picks another root) and prints progress.
The sides are randomised with a fresh seed stored in ``meta.json``; the output names no side,
so even the person who ran it reviews blind. Open the set on the review screen (key 4).
Ctrl-C stops after the current token; ``--resume SET_DIR`` generates the rest.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from core.generate import DEFAULT_BATCH_SIZE, GenerationSettings
from tui.cli.subcommand import Subcommand

REF_HELP = ("base (the base model of the run on the other side), a model reference "
            "(hub id, model directory, bundled:smollm2-135m-instruct), a run directory (its "
            "final adapter on its base model), or a checkpoint directory")


class Compare(Subcommand):
    """Generate both models' answers into a new (or interrupted) review set."""

    name = "compare"
    help = "Generate a blind A/B review set headless."
    description = __doc__.split("\n\n")[0]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Both models and the prompts, or ``--resume``; where to write; generation settings."""
        p = parser
        p.add_argument("--a", metavar="REF", help=f"Model A: {REF_HELP}.")
        p.add_argument("--b", metavar="REF", help="Model B, same forms as --a. The win rate is B's.")
        p.add_argument("--prompts", metavar="FILE",
                       help="Dataset file, sample:support-tickets-heldout, or val:RUN_DIR (the "
                            "run's validation split). A final assistant turn is the reference.")
        p.add_argument("--out", metavar="DIR", default=None,
                       help="Root for review/<name>/ (default: B's run directory, else A's, else .).")
        p.add_argument("--name", default=None, help="Review set name (default: time and models).")
        p.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens,
                       help="Longest answer in tokens (default: %(default)s).")
        p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                       help="Prompts generated together (default: %(default)s).")
        p.add_argument("--temperature", type=float, default=0.0,
                       help="0 for greedy decoding (default), above 0 to sample.")
        p.add_argument("--top-p", type=float, default=1.0, help="Nucleus mass when sampling.")
        p.add_argument("--seed", type=int, default=0, help="Sampling seed (default: %(default)s).")
        p.add_argument("--limit", type=int, default=None, help="Use only the first N prompts.")
        p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available).")
        p.add_argument("--resume", metavar="SET_DIR", default=None,
                       help="Generate the missing answers of an interrupted review set.")

    def run(self, args: argparse.Namespace) -> int:
        """Run :func:`compare_main` with the parsed arguments."""
        return compare_main(
            a=args.a, b=args.b, prompts=args.prompts, out=args.out, name=args.name,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
            temperature=args.temperature, top_p=args.top_p, seed=args.seed, limit=args.limit,
            device=args.device, resume=args.resume,
        )


def _fail(message: str, code: int = 2) -> int:
    print(f"tunetop compare: {message}", file=sys.stderr)
    return code


def compare_main(a: str | None = None, b: str | None = None, prompts: str | None = None,
                 out: str | None = None, name: str | None = None,
                 max_new_tokens: int = GenerationSettings.max_new_tokens,
                 batch_size: int = DEFAULT_BATCH_SIZE, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, limit: int | None = None,
                 device: str | None = None, resume: str | None = None,
                 generator: Any = None, side_seed: int | None = None) -> int:
    """Create (or ``resume``) a review set and generate both models' answers, printing progress.

    ``generator`` replaces :func:`core.generate.generate_pairs` (tests); ``side_seed`` fixes
    the side randomisation (default: a fresh random seed). Exit codes: 0 done, 1 a model
    failed to load or generate, 2 bad arguments, 130 interrupted (resume with ``--resume``).
    """
    from core.compare import new_comparison, resume_comparison
    from core.data import DataError
    from core.generate import GenerationError, PairRequest
    from core.review import ReviewError, generate_into

    try:
        if resume:
            comparison = resume_comparison(resume)
        elif not (a and b and prompts):
            return _fail("give --a, --b and --prompts (or --resume SET_DIR).")
        else:
            settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature,
                                          top_p=top_p, seed=seed, batch_size=batch_size)
            comparison = new_comparison(a, b, prompts, settings, out=out, name=name, limit=limit,
                                        side_seed=side_seed)
    except (GenerationError, ReviewError, DataError) as exc:
        return _fail(str(exc))
    except Exception as exc:  # a config.yaml that does not load, an unreadable directory
        return _fail(f"{type(exc).__name__}: {exc}")

    review, settings = comparison.review, comparison.settings
    print(f"review set {review.path}")
    print(f"A: {comparison.a.label}\nB: {comparison.b.label}")
    print(f"prompts: {review.meta['prompts']['source']} ({review.total}); {settings.describe()}")
    if review.complete:
        print("nothing to generate: every prompt has both answers.")
        return 0
    request = PairRequest(a=comparison.a, b=comparison.b,
                          conversations=[p.messages for p in review.prompts],
                          settings=settings, device=device)
    done = [len(review.items)]
    started = time.monotonic()

    status = StatusLine(sys.stdout)

    def show_items(new: list) -> None:
        """Print one progress line per new item."""
        status.clear()
        done[0] += len(new)
        rate = (done[0] - len(review.items)) / max(time.monotonic() - started, 1e-9)
        print(f"[{done[0]}/{review.total}] generated ({rate:.2f} prompts/s)", flush=True)

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
        """Ctrl-C: stop at the next token; what is generated stays saved."""
        print("stopping after the current token…", file=sys.stderr, flush=True)
        request.stop.set()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupt) if main_thread else None
    try:
        from core.generate import generate_pairs
        from core.models import ModelError

        generate_into(review, request, generator or generate_pairs,
                      on_status=status.show, on_items=show_items)
    except (ModelError, GenerationError) as exc:
        return _fail(str(exc), 1)
    except Exception as exc:  # CUDA out of memory, a broken adapter: say so, keep what is saved
        hint = (" Fix: lower --batch-size or --max-new-tokens." if "out of memory" in str(exc).lower()
                else "")
        return _fail(f"generation failed: {type(exc).__name__}: {exc}.{hint} Answers so far are "
                     f"saved; continue with --resume {review.path}", 1)
    finally:
        status.clear()
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    if request.stop.is_set():
        print(f"interrupted at {done[0]}/{review.total}; continue with "
              f"`tunetop compare --resume {review.path}`", file=sys.stderr)
        return 130
    print(f"done in {time.monotonic() - started:.1f}s: open it on the review screen "
          f"(tunetop, key 4) to judge blind.")
    return 0


class StatusLine:
    """Generation status on a terminal: one line rewritten in place as tokens come.

    Piped into a file, only a new phase is written (not every token count), so a log stays
    readable.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._open = False
        self._phase = ""

    def show(self, text: str) -> None:
        """Show ``text``: in place on a terminal, as a line when its phase is new otherwise."""
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
            self._open = True
            return
        phase = text.split(": token ")[0].rstrip("…")
        if phase != self._phase:
            self._phase = phase
            print(text, file=self.stream, flush=True)

    def clear(self) -> None:
        """End the line being rewritten, so the next output starts on its own line."""
        if self._open:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._open = False
