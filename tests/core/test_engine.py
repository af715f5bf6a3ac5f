"""The engine on a tiny real model: loss goes down, events are complete, stop and failures."""

from __future__ import annotations

import json
import math
import threading

import pytest
from helpers import run_engine, tiny_run_config

from core.alerts import AlertTracker
from core.config import RunConfig
from core.engine import Engine
from core.rundir import latest_checkpoint
from core.events import (
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    PhaseChanged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
    read_events,
)


def test_lora_run_lowers_loss_and_writes_a_complete_run_dir(tiny_model_dir, small_data, tmp_path):
    engine, events = run_engine(tiny_run_config(tiny_model_dir, small_data), tmp_path)
    kinds = [type(e) for e in events]
    assert kinds.count(RunStarted) == 1 and kinds[-1] is RunFinished, events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.total_steps == 12 and started.num_val_rows == 10
    assert 0 < started.trainable_params < started.total_params
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert [s.step for s in steps] == [2, 4, 6, 8, 10, 12]
    assert steps[-1].loss < steps[0].loss
    assert all(s.tokens_per_second > 0 and math.isfinite(s.grad_norm) for s in steps)
    evals = [e for e in events if isinstance(e, EvalLogged)]
    assert [e.step for e in evals] == [6, 12] and evals[-1].eval_loss < evals[0].eval_loss + 1e-6
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [6, 12]
    # What happens between steps is said: setup phases in order, evaluations batch by batch.
    setup = [e.phase for e in events[: kinds.index(RunStarted)] if isinstance(e, PhaseChanged)]
    assert list(dict.fromkeys(setup)) == ["data", "tokenizer", "tokenize", "model", "trainer"]
    assert started.eval_steps == 6
    progress = [e for e in events if isinstance(e, EvalProgressed)]
    for at in (6, 12):
        done = [e.done for e in progress if e.step == at]
        assert done[0] == 0 and done[-1] == progress[-1].total == 2  # 10 rows in batches of 8
    assert kinds.index(EvalProgressed) < kinds.index(EvalLogged)
    saves = [e.message for e in events if isinstance(e, PhaseChanged) and e.phase in ("checkpoint", "final")]
    assert saves == ["Saving checkpoint-6", "Saving checkpoint-12", "Writing the final adapter"]

    run_dir = engine.run_dir
    assert RunConfig.load(run_dir / "config.yaml") == engine.config
    on_disk, _ = read_events(str(run_dir / "events.jsonl"))
    assert [type(e) for e in on_disk] == kinds
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
    assert json.loads((run_dir / "final" / "adapter_config.json").read_text())["r"] == 16
    assert latest_checkpoint(run_dir).name == "checkpoint-12"
    # Published whole: no staging leftovers, and the saved state names the published best.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-12", "checkpoint-6"]
    state = json.loads((run_dir / "checkpoints" / "checkpoint-12" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(run_dir / "checkpoints" / f"checkpoint-{state['best_global_step']}")


def test_adapter_reloads_with_the_same_greedy_output(tiny_model_dir, small_data, tmp_path):
    """The saved adapter, loaded on the base, generates what the model trained in memory did."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    events = []
    engine = Engine(tiny_run_config(tiny_model_dir, small_data, max_steps=6), events.append,
                    workspace=tmp_path)
    engine.setup()
    try:
        engine.train()
        assert isinstance(events[-1], RunFinished)
        tok = AutoTokenizer.from_pretrained(engine.run_dir / "final")
        prompt = tok.apply_chat_template([{"role": "user", "content": "Router broke"}],
                                         add_generation_prompt=True, return_tensors="pt")
        ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt

        def greedy(model):
            model = model.float().eval()
            with torch.no_grad():
                return model.generate(ids.to(model.device), max_new_tokens=12,
                                      do_sample=False)[0].tolist(), model(ids.to(model.device)).logits.cpu()

        trained_tokens, trained_logits = greedy(engine._trainer.model)
    finally:
        engine.cleanup()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                         engine.run_dir / "final")
    reloaded_tokens, reloaded_logits = greedy(reloaded)
    assert reloaded_tokens == trained_tokens
    assert torch.allclose(reloaded_logits, trained_logits, atol=1e-4)
    _, base_logits = greedy(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert not torch.allclose(reloaded_logits, base_logits)  # the adapter changed the model


def _loss_of(trainer, rows) -> float:
    import torch

    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, trainer.data_collator(rows)))


def test_padding_free_batches_keep_rows_apart(tiny_model_dir, small_data, tmp_path):
    """One unpadded sequence per micro-batch gives each row exactly the loss it has alone."""
    engine = Engine(tiny_run_config(tiny_model_dir, small_data), lambda e: None, workspace=tmp_path)
    engine.setup()
    trainer = engine._trainer
    rows = [trainer.train_dataset[i] for i in range(4)]
    assert len({len(r["input_ids"]) for r in rows}) > 1  # varied lengths, so padding would show
    batch = trainer.data_collator(rows)
    assert batch["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    assert "attention_mask" not in batch
    weighted = [(_loss_of(trainer, [r]), sum(x != -100 for x in r["labels"][1:])) for r in rows]
    alone = sum(loss * n for loss, n in weighted) / sum(n for _, n in weighted)
    assert _loss_of(trainer, rows) == pytest.approx(alone, rel=1e-4)
    assert trainer.args.train_sampling_strategy == "random"  # nothing left for length grouping
    engine.cleanup()


def test_lm_head_scores_only_trained_positions_with_the_same_loss_and_gradients(
        tiny_model_dir, small_data, tmp_path, monkeypatch):
    import torch
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    engine = Engine(tiny_run_config(tiny_model_dir, small_data), lambda e: None, workspace=tmp_path)
    engine.setup()
    trainer, model = engine._trainer, engine._trainer.model
    rows = [trainer.train_dataset[i] for i in range(4)]
    scored = []
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *a: scored.append(hidden.shape[0]) or apply(hidden, *a))

    def loss_and_grads():
        model.eval()  # no dropout: both passes must see the same function
        model.zero_grad()
        loss = trainer.compute_loss(model, trainer.data_collator(rows))
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    compact = loss_and_grads()
    monkeypatch.setattr(trl_utils, "_use_triton", kernel._use_triton)  # TRL's own CPU path
    full = loss_and_grads()
    trained = sum(x != -100 for r in rows for x in r["labels"][1:])
    assert scored == [trained, sum(len(r["input_ids"]) for r in rows) - 1]
    assert trained < scored[1] / 2  # the prompts are most of the sample rows
    assert compact[0] == pytest.approx(full[0], rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(compact[1], full[1]))
    engine.cleanup()


def test_padding_free_only_where_it_keeps_rows_apart_and_pays():
    from core.config import ModelConfig
    from core.models import padding_free_refusal

    model = ModelConfig()
    assert padding_free_refusal(model, "cpu") is None  # sdpa, measured faster on CPU
    assert "flash_attention_2" in padding_free_refusal(model, "cuda")
    model.attn_implementation = "flash_attention_2"
    assert padding_free_refusal(model, "cuda") is None
    model.trust_remote_code = True
    assert "own code" in padding_free_refusal(model, "cuda")


def test_remote_code_models_get_padded_length_grouped_batches(tiny_model_dir, small_data, tmp_path):
    events = []
    cfg = tiny_run_config(tiny_model_dir, small_data)
    cfg.model.trust_remote_code = True  # its own code may build its own mask: no packing
    engine = Engine(cfg, events.append, workspace=tmp_path)
    engine.setup()
    trainer = engine._trainer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert batch["input_ids"].shape[0] == 4 and "attention_mask" in batch
    assert trainer.args.train_sampling_strategy == "group_by_length"
    assert any("Padding-free batches are off" in getattr(e, "message", "") for e in events)
    engine.cleanup()


def test_stop_takes_effect_within_a_step_and_leaves_a_resumable_checkpoint(
    tiny_model_dir, small_data, tmp_path
):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=200)
    engine = None
    stopped = threading.Event()

    def sink(event):
        if isinstance(event, StepLogged) and event.step >= 2 and not stopped.is_set():
            stopped.set()
            engine.stop()
        events.append(event)

    events: list = []
    engine = Engine(cfg, sink, workspace=tmp_path)
    engine.start()
    assert engine.join(timeout=600)
    final = events[-1]
    assert isinstance(final, RunStopped)
    assert final.step <= 3  # the step running when stop() was called, at most one more
    assert latest_checkpoint(engine.run_dir).name == f"checkpoint-{final.step}"
    assert final.checkpoint.endswith(f"checkpoint-{final.step}")

    cfg.optim.max_steps = final.step + 2
    resumed, more = run_engine(cfg, tmp_path, resume_dir=engine.run_dir)
    start = next(e for e in more if isinstance(e, RunStarted))
    assert start.resumed_from_step == final.step
    assert isinstance(more[-1], RunFinished) and more[-1].step == final.step + 2
    assert resumed.run_dir == engine.run_dir


def test_qlora_trains_a_few_steps_on_cpu(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=4)
    cfg.method = "qlora"
    cfg.eval.eval_steps = cfg.eval.save_steps = 4
    _, events = run_engine(cfg, tmp_path)
    assert isinstance(events[-1], RunFinished), events[-1]
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert len(steps) == 2 and all(math.isfinite(s.loss) for s in steps)


def test_full_fine_tune_trains_every_parameter(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=2, learning_rate=1e-3)
    cfg.method = "full"
    engine, events = run_engine(cfg, tmp_path)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.trainable_params == started.total_params
    assert isinstance(events[-1], RunFinished)
    assert (engine.run_dir / "final" / "model.safetensors").is_file()


def test_non_finite_loss_stops_on_that_step_with_a_reason(tiny_model_dir, small_data, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    broken = tmp_path / "broken-model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] = float("inf")
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(broken)
    _, events = run_engine(tiny_run_config(broken, small_data), tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed), failed
    assert "became nan" in failed.reason.lower() and "step 1" in failed.reason
    assert failed.phase == "train" and "learning rate" in failed.suggestion
    assert "no checkpoint was written before it" in failed.reason
    assert not any(isinstance(e, StepLogged) for e in events)
    assert [a.key for a in AlertTracker().update_all(events)] == ["nonfinite"]


def test_missing_model_fails_with_a_readable_reason(small_data, tmp_path):
    cfg = tiny_run_config(tmp_path / "no-such-model", small_data)
    _, events = run_engine(cfg, tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert "does not exist" in failed.reason and failed.phase == "model"


def test_invalid_config_fails_before_creating_a_run_dir(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, learning_rate=-1.0)
    _, events = run_engine(cfg, tmp_path / "runs")
    assert isinstance(events[-1], RunFailed) and "learning_rate" in events[-1].reason
    assert not (tmp_path / "runs").exists()


class _OomOnBigBatches:
    """Raises an out-of-memory error on step 3 while the micro-batch is 4, like a real OOM."""

    def __init__(self):
        from transformers import TrainerCallback

        class Cb(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == 3 and args.per_device_train_batch_size == 4:
                    import torch

                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        self.callback = Cb()


def _engine_with_oom(cfg, sink, workspace):
    engine = Engine(cfg, sink, workspace=workspace)
    build = engine._build_trainer

    def build_with_fault(*args):
        trainer = build(*args)
        trainer.add_callback(_OomOnBigBatches().callback)
        return trainer

    engine._build_trainer = build_with_fault
    return engine


def test_out_of_memory_names_the_phase_and_the_fix(tiny_model_dir, small_data, tmp_path):
    events = []
    engine = _engine_with_oom(tiny_run_config(tiny_model_dir, small_data, max_steps=6), events.append,
                              tmp_path)
    engine.run()
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "train"
    assert failed.reason == "Out of memory during train."
    assert "gradient_accumulation_steps" in failed.suggestion and "retry_on_oom" in failed.suggestion


def test_opt_in_oom_retry_keeps_the_effective_batch_and_finishes(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=6, retry_on_oom=True)
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    events = []
    engine = _engine_with_oom(cfg, events.append, tmp_path)
    engine.run()
    assert isinstance(events[-1], RunFinished), events[-1]
    retry = [e for e in events if getattr(e, "level", "") == "warning" and "Out of memory" in e.message]
    assert len(retry) == 1 and "micro-batch 2 x accumulation 2" in retry[0].message
    assert "checkpoint-2" in retry[0].message
    saved = RunConfig.load(engine.run_dir / "config.yaml").optim
    assert (saved.per_device_train_batch_size, saved.gradient_accumulation_steps) == (2, 2)
    assert [e.step for e in events if isinstance(e, StepLogged)][-1] == 6
