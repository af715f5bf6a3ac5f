"""Forgetting on the bundled model and the sample task: general drift against task exact match.

Trains ``core/samples/support_tickets.yaml`` three ways with the engine:

- ``lora``: the sample config as it is (LoRA, learning rate 1e-3);
- ``full``: a full fine-tune at a high learning rate (``--full-lr``, default 2e-4, ten times
  the usual 2e-5);
- ``replay``: the sample config with ``data.replay`` (``--replay``, default 0.1).

Each run measures ``general_drift`` at every evaluation (the model's loss per token on the
base model's own answers to ``eval.general_sample`` general prompts, above the base's). Then
greedy answers to the first ``--score`` held-out tickets are scored by exact match of the JSON
object (``core.metrics.score``), for the base and each fine-tune.

Also printed: the first computation of the base answers with an empty cache (the issue's target:
under 2 minutes for the bundled model on a 2-core CPU), and what drift adds to an evaluation
beside the validation loss (the engine logs both once per run).

    python bench/forgetting.py [--max-steps N] [--eval-steps N] [--score N] [--variants lora,full,replay]

The defaults are the sample's own 40 steps (about 10 minutes a variant on a 2-core CPU); a
brief check: ``--max-steps 2 --eval-steps 1 --score 8 --general-sample 8
--general-max-new-tokens 16 --replay 0.02`` (figures of no weight, a check that it all runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def variant_config(name: str, args: argparse.Namespace):
    """The sample config changed for one variant."""
    from core.config import RunConfig

    config = RunConfig.load(ROOT / "core" / "samples" / "support_tickets.yaml")
    config.run_name = name
    config.optim.max_steps = args.max_steps
    config.eval.eval_steps = config.eval.save_steps = args.eval_steps
    config.eval.early_stopping_patience = 0  # every variant trains its steps
    if name == "full":
        config.method = "full"
        config.optim.learning_rate = args.full_lr
    elif name == "replay":
        config.data.replay = args.replay
    if args.model:
        config.model.name_or_path = args.model
    config.eval.general_sample = args.general_sample
    config.eval.general_max_new_tokens = args.general_max_new_tokens
    return config


def train(name: str, args: argparse.Namespace, workspace: str) -> tuple[Path, float, list]:
    """One variant's run: its directory, wall seconds and events."""
    from core.engine import Engine

    events: list = []
    engine = Engine(variant_config(name, args), events.append, workspace=workspace)
    start = time.perf_counter()
    engine.run()
    return Path(engine.run_dir), time.perf_counter() - start, events


def messages(events: list, prefix: str) -> list[str]:
    """The run log's lines that start with ``prefix``."""
    from core.events import MessageLogged

    return [e.message for e in events if isinstance(e, MessageLogged) and e.message.startswith(prefix)]


def exact_match(ref, prompts, references, settings) -> float:
    """Exact match of greedy answers of the model ``ref`` to ``prompts``."""
    from core.generate import load_generators
    from core.metrics import score

    generator = load_generators([ref])[0]
    answers = dict(generator.generate_all(prompts, settings))
    return score([answers[i] for i in range(len(prompts))], references)["exact_match"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=40, help="Steps of each run (sample: 40).")
    parser.add_argument("--eval-steps", type=int, default=20, help="Steps between evaluations.")
    parser.add_argument("--score", type=int, default=120, help="Held-out tickets scored (of 120).")
    parser.add_argument("--full-lr", type=float, default=2e-4, help="Learning rate of the full run.")
    parser.add_argument("--replay", type=float, default=0.1, help="data.replay of the replay run.")
    parser.add_argument("--variants", default="lora,full,replay", help="Which runs, in order.")
    parser.add_argument("--model", default=None,
                        help="Another model than the sample's bundled one (a folder): for a "
                             "quick check that the bench runs, e.g. a tiny test model.")
    parser.add_argument("--general-sample", type=int, default=32,
                        help="eval.general_sample (the default: 32 prompts).")
    parser.add_argument("--general-max-new-tokens", type=int, default=48,
                        help="eval.general_max_new_tokens (the default: 48).")
    parser.add_argument("--workspace", default=None,
                        help="Keep the runs in this folder (e.g. for bench/preference.py --sft "
                             "WORKSPACE/runs/lora) instead of a scratch folder.")
    args = parser.parse_args()

    from core.data import load_examples
    from core.events import EvalLogged, RunFinished
    from core.forgetting import ANSWERS_ENV
    from core.generate import GenerationSettings, resolve_pair

    held_out = load_examples("sample:support-tickets-heldout").examples[: args.score]
    prompts = [e.messages[:-1] for e in held_out]
    references = [e.messages[-1]["content"] for e in held_out]
    settings = GenerationSettings(max_new_tokens=64, batch_size=8)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workspace = args.workspace or scratch
        os.environ[ANSWERS_ENV] = str(Path(scratch) / "base-answers")  # a cold cache
        for name in args.variants.split(","):
            run_dir, seconds, events = train(name, args, workspace)
            if not isinstance(events[-1], RunFinished):
                sys.exit(f"{name}: training did not finish: {events[-1]}")
            if args.workspace:
                print(f"{name}: run kept in {run_dir}")
            for line in messages(events, "Base answers to ") + messages(events, "General drift took "):
                print(f"{name}: {line}")
            evals = [e for e in events if isinstance(e, EvalLogged)]
            base_ref, tuned_ref = resolve_pair("base", str(run_dir))
            if not rows:
                rows.append(("base", None, [], exact_match(base_ref, prompts, references, settings)))
            rows.append((name, seconds, evals, exact_match(tuned_ref, prompts, references, settings)))

    print(f"\n{args.max_steps} steps per run, evaluation every {args.eval_steps}; drift on "
          f"{args.general_sample} general prompts (answers of at most {args.general_max_new_tokens} "
          f"tokens); exact match on {len(prompts)} held-out tickets (greedy, 64 new tokens)")
    print(f"{'':<8}{'wall':>7}{'val loss':>10}{'drift':>9}{'exact':>8}  drift at each evaluation")
    for name, seconds, evals, match in rows:
        wall = f"{seconds / 60:.1f}m" if seconds is not None else ""
        val = f"{evals[-1].eval_loss:.4f}" if evals else ""
        drift = f"{evals[-1].general_drift:+.3f}" if evals else "0"
        path = " ".join(f"{e.general_drift:+.3f}@{e.step}" for e in evals)
        print(f"{name:<8}{wall:>7}{val:>10}{drift:>9}{match:>8.1%}  {path}")


if __name__ == "__main__":
    main()
