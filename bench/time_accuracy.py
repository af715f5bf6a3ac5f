"""How close the time estimate comes to the real run, and whether a time budget holds.

For three configs of different sizes (a 2-layer Llama with a small batch, a wider one with
a bigger batch and longer rows, and the bundled SmolLM2-135M), the script estimates the run's
wall time twice, with a fresh probe (:func:`core.timing.estimate_run_time`, a few real steps)
and with the FLOPs model alone, then runs the config with the engine and prints estimated vs
measured wall time and the error of each (goal: within 20% for the probe). The probe cache
is a scratch file, so every figure is measured now.

``--budget 8m`` instead trains the sample task (``core/samples/support_tickets.yaml``) with
``optim.time_budget`` set and prints the budget, the wall time, the steps it was sized to
(against the config's own) and the final validation loss; score its exact match with
``bench/sample_quality.py --run RUN_DIR`` (the run is kept in ``--workspace``).

    python bench/time_accuracy.py [--steps 24] [--skip-bundled]
    python bench/time_accuracy.py --budget 8m --workspace /tmp/budget-runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def sample_rows(folder: Path, count: int) -> Path:
    """The first ``count`` rows of the sample dataset in ``folder``."""
    from core.data import resolve_data_path

    lines = resolve_data_path("sample:support-tickets").read_text().splitlines()[:count]
    path = folder / f"tickets-{count}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def configs(folder: Path, steps: int, bundled: bool) -> list[tuple[str, object]]:
    """(name, RunConfig) of the three sizes."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.config import RunConfig
    from core.models import ensure_bundled_model
    from helpers import make_tiny_model, tiny_run_config

    base = ensure_bundled_model()
    tiny = make_tiny_model(folder / "tiny", base)
    wide = folder / "wide"
    shape = LlamaConfig.from_pretrained(tiny).to_dict()
    LlamaForCausalLM(LlamaConfig(**{**shape, "hidden_size": 256, "intermediate_size": 704,
                                    "num_hidden_layers": 4, "num_attention_heads": 8,
                                    "num_key_value_heads": 4})).save_pretrained(wide)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(wide)
    data = sample_rows(folder, 200)
    out = []
    small = tiny_run_config(tiny, data, max_steps=steps)
    out.append(("tiny 2x64, batch 4", small))
    big = tiny_run_config(wide, data, max_steps=steps, per_device_train_batch_size=8)
    big.data.max_length = 512
    out.append(("wide 4x256, batch 8", big))
    if bundled:
        cfg = RunConfig()
        cfg.data.path = str(data)
        cfg.data.max_length = 256
        cfg.optim.max_steps = max(steps // 4, 4)
        cfg.optim.per_device_train_batch_size = 2
        cfg.eval.eval_steps = cfg.eval.save_steps = max(steps // 8, 2)
        cfg.eval.max_rows = 8
        out.append(("SmolLM2-135M LoRA, batch 2", cfg))
    for _, cfg in out:
        cfg.eval.keep_best = False
    return out


def measure(config, workspace: Path) -> float:
    """Wall seconds of a real run of ``config``, setup to final save."""
    from core.engine import Engine
    from core.events import RunFinished

    began = time.perf_counter()
    final = Engine(config, workspace=workspace).run()
    if not isinstance(final, RunFinished):
        raise SystemExit(f"the run did not finish: {final}")
    return time.perf_counter() - began


def accuracy(args: argparse.Namespace) -> None:
    from core.timing import estimate_run_time

    with tempfile.TemporaryDirectory(prefix="time-accuracy-") as scratch:
        folder = Path(scratch)
        os.environ["TUNETOP_TIMING_CACHE"] = str(folder / "timing.json")
        rows = []
        for name, cfg in configs(folder, args.steps, not args.skip_bundled):
            began = time.perf_counter()
            probed = estimate_run_time(cfg, probe=True)
            probe_seconds = time.perf_counter() - began
            # An empty cache, so the FLOPs model answers, not the probe just cached.
            os.environ["TUNETOP_TIMING_CACHE"] = str(folder / f"empty-{len(rows)}.json")
            modelled = estimate_run_time(cfg, probe=False)
            os.environ["TUNETOP_TIMING_CACHE"] = str(folder / "timing.json")
            real = measure(cfg, folder / "runs")
            rows.append((name, probed.plan.steps, probe_seconds, probed.total_seconds,
                         modelled.total_seconds, real))
            print(f"  {name}: probe {probed.total_seconds:.1f} s, FLOPs {modelled.total_seconds:.1f} s, "
                  f"real {real:.1f} s", file=sys.stderr, flush=True)
    print(f"{'config':<28} {'steps':>5} {'probe took':>10} {'probe est':>9} {'err':>6} "
          f"{'FLOPs est':>9} {'err':>6} {'measured':>8}")
    for name, steps, took, probed, modelled, real in rows:
        print(f"{name:<28} {steps:>5} {took:>9.1f}s {probed:>8.1f}s {(probed - real) / real:>+6.0%} "
              f"{modelled:>8.1f}s {(modelled - real) / real:>+6.0%} {real:>7.1f}s")


def budgeted(args: argparse.Namespace) -> None:
    from core.config import RunConfig
    from core.engine import Engine
    from core.events import RunFinished, RunStarted
    from core.timing import epoch_steps, parse_duration

    config = RunConfig.load(ROOT / "core" / "samples" / "support_tickets.yaml")
    config.optim.time_budget = args.budget
    events: list = []
    began = time.perf_counter()
    engine = Engine(config, events.append, workspace=args.workspace)
    final = engine.run()
    wall = time.perf_counter() - began
    started = next(e for e in events if isinstance(e, RunStarted))
    own = config.optim.max_steps if config.optim.max_steps > 0 else epoch_steps(config, started.num_train_rows)
    budget = parse_duration(args.budget)
    print(f"budget {budget:.0f} s, wall {wall:.1f} s ({'inside' if wall <= budget else 'OVER'}), "
          f"steps {final.step} of the config's {own}")
    if isinstance(final, RunFinished):
        print(f"final validation loss {final.final_eval_loss}, best {final.best_eval_loss}")
    print(f"run {engine.run_dir}; its exact match: python bench/sample_quality.py --run {engine.run_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="Steps of the two tiny configs.")
    parser.add_argument("--skip-bundled", action="store_true", help="Leave out SmolLM2-135M.")
    parser.add_argument("--budget", default=None, help="Train the sample task with this time budget.")
    parser.add_argument("--workspace", default="runs", help="Where --budget's run goes.")
    args = parser.parse_args()
    if args.budget:
        budgeted(args)
    else:
        accuracy(args)


if __name__ == "__main__":
    main()
