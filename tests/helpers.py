"""Helpers shared by test modules: ``from helpers import ...`` (pytest puts tests/, tests/tui and
bench/ on sys.path; see ``pythonpath`` in pyproject.toml)."""

from __future__ import annotations


def sample_rows(path, count: int):
    """The first ``count`` rows of the bundled support-tickets sample, written to ``path``
    (a JSONL file); returns ``path``."""
    from core.data import resolve_data_path

    lines = resolve_data_path("sample:support-tickets").read_text().splitlines()[:count]
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_run_config(model_dir, data_path, **optim):
    """A RunConfig that trains ``model_dir`` for 12 quick steps on ``data_path``."""
    from core.config import RunConfig

    cfg = RunConfig()
    cfg.model.name_or_path = str(model_dir)
    cfg.data.path = str(data_path)
    cfg.data.max_length = 256
    cfg.optim.learning_rate = 3e-3
    cfg.optim.precision = "fp32"  # autocast costs more than it saves on a 2-layer model
    cfg.optim.max_steps = 12
    cfg.optim.per_device_train_batch_size = 4
    cfg.eval.logging_steps = 2
    cfg.eval.eval_steps = 6
    cfg.eval.save_steps = 6
    cfg.eval.per_device_eval_batch_size = 8
    # no general drift: asking the base model costs seconds a run; tests of the forgetting
    # guard turn it on (measure_drift)
    cfg.eval.general_sample = 0
    for key, value in optim.items():
        setattr(cfg.optim, key, value)
    return cfg


def run_engine(cfg, workspace, **kwargs):
    """Run the real engine on ``cfg`` in its thread until it ends; ``(engine, events)``."""
    from core.engine import Engine

    events = []
    engine = Engine(cfg, events.append, workspace=workspace, **kwargs)
    engine.start()
    assert engine.join(timeout=600)
    return engine, events


def measure_drift(cfg, sample: int = 8, max_new_tokens: int = 8):
    """Turn general drift on in ``cfg`` (from :func:`tiny_run_config`), on ``sample`` short
    answers: the feature runs, at a tiny model's cost."""
    cfg.eval.general_sample = sample
    cfg.eval.general_max_new_tokens = max_new_tokens
    return cfg


def make_tiny_model(out, tokenizer_dir):
    """Save a 2-layer Llama (random weights, seed 0) with ``tokenizer_dir``'s tokenizer in ``out``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


async def wait_for(pilot, predicate, timeout: float = 10.0) -> None:
    """Pause the app under ``pilot`` until ``predicate()`` holds (or fail after ``timeout`` s)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.02)
    assert predicate(), "condition not reached in time"


def write_run(workspace, name: str, events, pid: int | None = None,
              checkpoint: int | None = None):
    """A run directory ``workspace/name`` with a config, ``events`` as events.jsonl, a worker
    pid file and a complete checkpoint when given; returns its path."""
    from core.config import RunConfig

    run_dir = workspace / name
    run_dir.mkdir(parents=True)
    RunConfig(run_name=name).save(run_dir / "config.yaml")
    with open(run_dir / "events.jsonl", "w") as f:
        for event in events:
            f.write(event.to_json() + "\n")
    if pid:
        (run_dir / "worker.pid").write_text(str(pid))
    if checkpoint:
        ckpt = run_dir / "checkpoints" / f"checkpoint-{checkpoint}"
        ckpt.mkdir(parents=True)
        (ckpt / "COMPLETE").write_text(str(checkpoint))
    return run_dir
