"""The whole sample loop on this machine: train the sample config, then score base vs fine-tuned.

Trains ``core/samples/support_tickets.yaml`` with the engine (the wall time is the figure the
README promises: at most 10 minutes on a 2-core CPU), then generates greedy answers for the
120 held-out tickets with the base model and with the fine-tuned adapter, and scores both
with ``core.metrics.score`` (exact match of the JSON object, valid JSON, per-field accuracy).

    python bench/sample_quality.py [--run RUN_DIR] [--limit N]

``--run`` scores an existing run instead of training a new one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train(workspace: str) -> tuple[Path, float, list]:
    """Run the sample config; return the run directory, wall seconds and the events."""
    from core.config import RunConfig
    from core.engine import Engine

    events: list = []
    config = RunConfig.load(ROOT / "core" / "samples" / "support_tickets.yaml")
    engine = Engine(config, events.append, workspace=workspace)
    start = time.perf_counter()
    engine.run()
    return Path(engine.run_dir), time.perf_counter() - start, events


def score_side(generator, prompts, settings) -> dict:
    """Greedy answers for every held-out prompt, scored against the references."""
    from core.metrics import score

    answers = dict(generator.generate_all([p for p, _ in prompts], settings))
    return score([answers[i] for i in range(len(prompts))], [ref for _, ref in prompts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="Score this run instead of training one.")
    parser.add_argument("--limit", type=int, default=None, help="Score only the first N held-out rows.")
    args = parser.parse_args()

    from core.data import load_examples
    from core.events import EvalLogged, RunFinished
    from core.generate import GenerationSettings, load_generators, resolve_pair

    with tempfile.TemporaryDirectory() as workspace:
        if args.run:
            run_dir, seconds, events = Path(args.run), None, []
        else:
            run_dir, seconds, events = train(workspace)
            if not isinstance(events[-1], RunFinished):
                sys.exit(f"training did not finish: {events[-1]}")
        held_out = load_examples("sample:support-tickets-heldout").examples[: args.limit]
        prompts = [(e.messages[:-1], e.messages[-1]["content"]) for e in held_out]
        base_ref, tuned_ref = resolve_pair("base", str(run_dir))
        base, tuned = load_generators([base_ref, tuned_ref])
        settings = GenerationSettings(max_new_tokens=64, batch_size=8)
        start = time.perf_counter()
        before = score_side(base, prompts, settings)
        after = score_side(tuned, prompts, settings)
        gen_seconds = time.perf_counter() - start

    evals = [e for e in events if isinstance(e, EvalLogged)]
    if seconds is not None:
        print(f"training: {seconds / 60:.1f} min wall on this machine, {events[-1].step} steps")
    if evals:
        print("validation loss: " + " -> ".join(f"{e.eval_loss:.4f}@{e.step}" for e in evals))
    print(f"held-out rows: {len(prompts)} (greedy, max 64 new tokens; generation {gen_seconds:.0f}s)")
    print(f"{'':<12}{'exact match':>12}{'valid JSON':>12}  per field")
    for name, s in (("base", before), ("fine-tuned", after)):
        fields = "  ".join(f"{k} {v:.0%}" for k, v in (s.get("field_accuracy") or {}).items())
        print(f"{name:<12}{s['exact_match']:>12.1%}{s['valid_json']:>12.1%}  {fields}")


if __name__ == "__main__":
    main()
