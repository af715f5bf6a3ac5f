"""Engine throughput against plain TRL scripts, measured side by side in one run.

Three runs, each one full epoch over the same varied-length data in its own subprocess, with
the same optimisation (TRL's schedule: linear, no warm-up, no weight decay; seed 0):

* ``trl-defaults``: a plain ``SFTTrainer`` script with TRL's defaults (bf16, padded random
  batches, gradient checkpointing, LM head over every position).
* ``trl-fast``: the same script with the engine's speed settings: padding-free batches, the LM
  head on trained positions only (:func:`core.trainer.score_trained_positions_only`), no
  gradient checkpointing (the engine's default; it trades memory for speed).
* ``engine``: ``core.engine.Engine`` with events, run directory and checkpoints.

Every run sees every row once, so each processes the same non-padding tokens; throughput is
those tokens over the training time (for trl-fast and engine, the mean of ``--repeats`` runs).
Prints tokens/s, the two ratios and the loss each run ends with on a fixed validation set (the
speed settings must not change what is learned).

    python bench/throughput.py [--model REF] [--rows 64] [--batch 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_dataset(path: Path, rows: int, seed: int = 0) -> None:
    """Sample tickets with 0-3 earlier tickets as history, so lengths vary about 4x."""
    from core.data import resolve_data_path

    tickets = [json.loads(x) for x in resolve_data_path("sample:support-tickets").read_text().splitlines()]
    rng = random.Random(seed)
    filler = [t["messages"][1]["content"] for t in tickets]
    with path.open("w") as f:
        for i in range(rows):
            row = json.loads(json.dumps(tickets[i % len(tickets)]))
            extra = " ".join(rng.sample(filler, rng.choice([0, 0, 1, 2, 3])))
            if extra:
                row["messages"][1]["content"] += "\n\nEarlier messages: " + extra
            f.write(json.dumps(row) + "\n")


def child(kind: str, model: str, data: str, val: str, batch: int, out: str) -> None:
    """One measured run; writes {"tokens": N, "seconds": S, "eval_loss": L} to ``out``."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from core import data as D
    from core.config import RunConfig
    from core.machine import resolve_precision, training_device
    from core.models import load_model, load_tokenizer

    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.model.name_or_path = model
    cfg.data.path = data
    cfg.data.validation_fraction = 0.0
    cfg.data.max_length = 2048
    cfg.optim.num_train_epochs = 1
    cfg.optim.per_device_train_batch_size = batch
    cfg.eval.save_steps = cfg.eval.eval_steps = 10_000
    cfg.eval.logging_steps = 1
    cfg.optim.lr_scheduler_type, cfg.optim.warmup_ratio, cfg.optim.weight_decay = "linear", 0.0, 0.0
    cfg.optim.seed = 0
    tokenizer = load_tokenizer(model)
    train = D.tokenize_for_training(tokenizer, D.load_examples(data).examples, 2048)
    val = D.tokenize_for_training(tokenizer, D.load_examples(val).examples, 2048)
    tokens = sum(len(r["input_ids"]) for r in train)
    device = training_device()

    if kind == "engine":
        from core.engine import Engine
        from core.events import RunStarted, StepLogged
        from core.rundir import FINAL_DIR

        marks: dict[str, float] = {}

        def sink(event):
            if isinstance(event, RunStarted):
                marks["start"] = time.perf_counter()
            if isinstance(event, StepLogged):
                marks["end"] = time.perf_counter()

        with tempfile.TemporaryDirectory() as ws:
            engine = Engine(cfg, sink, workspace=ws)
            engine.run()
            seconds = marks["end"] - marks["start"]
            # Score the final adapter on the same validation rows as the TRL runs.
            from peft import PeftModel

            base = load_model(cfg.model, "lora", resolve_precision("auto", device), device)
            trained = PeftModel.from_pretrained(base, Path(engine.run_dir) / FINAL_DIR)
            eval_loss = _eval_loss(trained, val, tokenizer)
    else:
        from peft import LoraConfig

        precision = resolve_precision("auto", device)
        base = load_model(cfg.model, "lora", precision, device)
        args = dict(output_dir=tempfile.mkdtemp(), num_train_epochs=1, per_device_train_batch_size=batch,
                    learning_rate=cfg.optim.learning_rate, report_to="none", disable_tqdm=True,
                    save_strategy="no", logging_steps=1, max_length=2048, seed=0,
                    use_cpu=device == "cpu")
        if kind == "trl-fast":
            from core.trainer import score_trained_positions_only

            score_trained_positions_only()
            args.update(padding_free=True, max_length=None, gradient_checkpointing=False)
        marks = {}

        class Clock(TrainerCallback):
            def on_step_end(self, *a, **k):
                marks["end"] = time.perf_counter()

        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        trainer = SFTTrainer(model=base, args=SFTConfig(**args), train_dataset=Dataset.from_list(train),
                             processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])
        marks["start"] = time.perf_counter()  # like the engine's RunStarted: train()'s set-up counts
        trainer.train()
        seconds = marks["end"] - marks["start"]
        eval_loss = _eval_loss(trainer.model, val, tokenizer)
    Path(out).write_text(json.dumps({"tokens": tokens, "seconds": seconds, "eval_loss": eval_loss}))


def _eval_loss(model, rows, tokenizer) -> float:
    """Mean token loss over ``rows``, one row at a time (no padding effects)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["input_ids"]], device=model.device)
            labels = torch.tensor([row["labels"]], device=model.device)
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="Runs of trl-fast and of engine (mean).")
    parser.add_argument("--child", nargs=5, metavar=("KIND", "MODEL", "DATA", "VAL", "OUT"))
    args = parser.parse_args()
    if args.child:
        kind, model, data, val, out = args.child
        child(kind, model, data, val, args.batch, out)
        return
    from core.models import resolve_model_path

    resolve_model_path(args.model)  # convert the bundled model once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        data, val = Path(tmp) / "train.jsonl", Path(tmp) / "val.jsonl"
        make_dataset(data, args.rows, seed=0)
        make_dataset(val, 24, seed=1)
        # trl-fast and engine differ by a few percent: alternate which goes first (ABBA...) so
        # that drift in this machine's speed during the bench favours neither
        pair = ("trl-fast", "engine")
        order = ["trl-defaults"] + [kind for i in range(args.repeats)
                                    for kind in (pair if i % 2 == 0 else pair[::-1])]
        runs: dict[str, list[dict]] = {}
        for i, kind in enumerate(order):
            out = Path(tmp) / f"{i}-{kind}.json"
            subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--child", kind,
                            args.model, str(data), str(val), str(out)], check=True,
                           env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs.setdefault(kind, []).append(json.loads(out.read_text()))
    results = {kind: {"tokens": r[0]["tokens"], "seconds": sum(x["seconds"] for x in r) / len(r),
                      "eval_loss": r[0]["eval_loss"], "all": [x["seconds"] for x in r]}
               for kind, r in runs.items()}
    print(f"model {args.model}, {args.rows} rows of varied length, micro-batch {args.batch}, 1 epoch")
    print(f"{'run':<14}{'tokens':>9}{'seconds':>10}{'tokens/s':>11}{'val loss':>10}  runs (s)")
    for kind, r in results.items():
        print(f"{kind:<14}{r['tokens']:>9}{r['seconds']:>10.1f}{r['tokens'] / r['seconds']:>11.1f}"
              f"{r['eval_loss']:>10.4f}  {' '.join(f'{x:.1f}' for x in r['all'])}")
    rate = {k: r["tokens"] / r["seconds"] for k, r in results.items()}
    print(f"engine / trl-fast     = {rate['engine'] / rate['trl-fast']:.2f}x  (target >= 0.98x)")
    print(f"engine / trl-defaults = {rate['engine'] / rate['trl-defaults']:.2f}x  (target >= 1.5x)")


if __name__ == "__main__":
    main()
