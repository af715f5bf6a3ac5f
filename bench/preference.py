"""Preference tuning on the sample task: DPO on top of the sample SFT run, scored before and after.

1. The SFT parent: ``--sft RUN_DIR`` (e.g. a run of ``bench/sample_quality.py`` or the ``lora``
   run that ``bench/forgetting.py --workspace DIR`` keeps), or a fresh run of
   ``core/samples/support_tickets.yaml``.
2. Pairs from the sample's training tickets (``--pairs`` of them): chosen, the reference answer;
   rejected, the base model's greedy answer (pairs whose two answers are equal are left out).
   They are written as TRL conversational rows, the format ``tunetop export-preferences`` writes.
3. A DPO run (``objective: dpo``, LoRA continuing the SFT adapter, whose frozen copy is the
   reference) on those pairs, with a tenth held out to measure preference accuracy.
4. Greedy answers to the first ``--score`` held-out tickets, for the base, the SFT run and the DPO
   run, scored by exact match of the JSON object and valid JSON (``core.metrics.score``).

    python bench/preference.py [--sft RUN_DIR] [--pairs 128] [--steps 16] [--lr 5e-5] [--score 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "core" / "samples" / "support_tickets.yaml"


def run(config, workspace: str) -> tuple[Path, float, list]:
    """Train ``config`` with the engine: the run directory, wall seconds and the events."""
    from core.engine import Engine
    from core.events import RunFinished

    events: list = []
    engine = Engine(config, events.append, workspace=workspace)
    start = time.perf_counter()
    engine.run()
    if not isinstance(events[-1], RunFinished):
        sys.exit(f"{config.run_name}: training did not finish: {events[-1]}")
    return Path(engine.run_dir), time.perf_counter() - start, events


def answers(ref, prompts: list, settings) -> list[str]:
    """Greedy answers of the model ``ref`` to ``prompts``, in order."""
    from core.generate import load_generators

    generator = load_generators([ref])[0]
    out = dict(generator.generate_all(prompts, settings))
    return [out[i] for i in range(len(prompts))]


def write_pairs(path: Path, examples: list, rejected: list[str]) -> int:
    """Preference rows (chosen: the reference; rejected: the base's answer); the count written."""
    rows = [{"prompt": e.messages[:-1],
             "chosen": [e.messages[-1]],
             "rejected": [{"role": "assistant", "content": answer}]}
            for e, answer in zip(examples, rejected)
            if answer.strip() and answer.strip() != e.messages[-1]["content"].strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def dpo_config(sft_dir: Path, pairs: Path, args: argparse.Namespace):
    """The sample config turned into a DPO run on ``pairs`` that continues ``sft_dir``'s adapter."""
    from core.config import RunConfig

    config = RunConfig.load(SAMPLE)
    config.run_name = "dpo"
    config.objective = "dpo"
    config.model.adapter = str(sft_dir)
    config.data.path = str(pairs)
    config.data.validation_fraction = 0.1
    config.optim.learning_rate = args.lr
    config.optim.max_steps = args.steps
    config.optim.warmup_ratio = 0.0
    config.eval.eval_steps = config.eval.save_steps = max(1, args.steps // 2)
    config.eval.early_stopping_patience = 0
    config.eval.general_sample = 0  # drift has its own benchmark (bench/forgetting.py)
    config.preference.beta = args.beta
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", default=None, help="The SFT parent run (default: train one).")
    parser.add_argument("--pairs", type=int, default=128, help="Training tickets made into pairs.")
    parser.add_argument("--steps", type=int, default=16, help="DPO steps.")
    parser.add_argument("--lr", type=float, default=5e-5, help="DPO learning rate.")
    parser.add_argument("--beta", type=float, default=0.1, help="preference.beta.")
    parser.add_argument("--score", type=int, default=40, help="Held-out tickets scored (of 120).")
    args = parser.parse_args()

    from core.config import RunConfig
    from core.data import load_examples
    from core.events import EvalLogged
    from core.generate import GenerationSettings, resolve_pair, resolve_ref
    from core.metrics import score

    settings = GenerationSettings(max_new_tokens=64, batch_size=8)
    train_examples = load_examples("sample:support-tickets").examples[: args.pairs]
    held_out = load_examples("sample:support-tickets-heldout").examples[: args.score]
    prompts = [e.messages[:-1] for e in held_out]
    references = [e.messages[-1]["content"] for e in held_out]
    with tempfile.TemporaryDirectory() as workspace:
        if args.sft:
            sft_dir, sft_seconds = Path(args.sft), None
        else:
            config = RunConfig.load(SAMPLE)
            config.eval.general_sample = 0
            sft_dir, sft_seconds, _ = run(config, workspace)
        base_ref, sft_ref = resolve_pair("base", str(sft_dir))
        start = time.perf_counter()
        rejected = answers(base_ref, [e.messages[:-1] for e in train_examples], settings)
        pairs_path = Path(workspace) / "pairs.jsonl"
        count = write_pairs(pairs_path, train_examples, rejected)
        pair_seconds = time.perf_counter() - start
        dpo_dir, dpo_seconds, events = run(dpo_config(sft_dir, pairs_path, args), workspace)
        scores = {name: score(answers(ref, prompts, settings), references)
                  for name, ref in (("base", base_ref), ("SFT", sft_ref),
                                    ("SFT + DPO", resolve_ref(str(dpo_dir))))}

    evals = [e for e in events if isinstance(e, EvalLogged)]
    if sft_seconds is not None:
        print(f"SFT run: {sft_seconds / 60:.1f} min")
    print(f"pairs: {count} of {len(train_examples)} training tickets (chosen: the reference; "
          f"rejected: the base's greedy answer), built in {pair_seconds:.0f}s")
    print(f"DPO: {args.steps} steps, learning rate {args.lr:g}, beta {args.beta:g}, "
          f"{dpo_seconds / 60:.1f} min")
    for e in evals:
        print(f"  held-out pairs at step {e.step}: loss {e.eval_loss:.4f}, reward margin "
              f"{e.reward_margin:+.3f}, preference accuracy {e.reward_accuracy:.0%}")
    print(f"exact match on {len(prompts)} held-out tickets (greedy, max 64 new tokens)")
    print(f"{'':<12}{'exact match':>12}{'valid JSON':>12}")
    for name, s in scores.items():
        print(f"{name:<12}{s['exact_match']:>12.1%}{s['valid_json']:>12.1%}")


if __name__ == "__main__":
    main()
