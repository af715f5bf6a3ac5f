"""Fixtures of tests/core: one real run of the bundled model, shared by the export tests."""

from __future__ import annotations

import os

import pytest

FAKE_TRACKER_TOKEN = "wandb-fake-key-0123456789abcdef"
"""In the environment while the shared run trains: it must appear in no file the run writes."""


@pytest.fixture(scope="session")
def tracker_token():
    """The fake tracker token set while :func:`bundled_run` trained."""
    return FAKE_TRACKER_TOKEN


@pytest.fixture(scope="session")
def bundled_run(bundled_dir, tmp_path_factory):
    """A finished LoRA run of the bundled SmolLM2-135M: 2 steps on 16 tickets (4 held out),
    a checkpoint at each step, TensorBoard as its tracker. About half a minute on 2 cores."""
    from core.config import BUNDLED_MODEL, RunConfig
    from helpers import sample_rows
    from core.engine import Engine
    from core.events import RunFinished

    data = sample_rows(tmp_path_factory.mktemp("bundled-data") / "tickets.jsonl", 16)
    cfg = RunConfig(run_name="bundled-lora")
    cfg.model.name_or_path = BUNDLED_MODEL
    cfg.data.path = str(data)
    cfg.data.max_length = 128
    cfg.data.validation_fraction = 0.25
    cfg.optim.max_steps = 2
    cfg.optim.per_device_train_batch_size = 2
    cfg.optim.learning_rate = 1e-3
    cfg.optim.precision = "fp32"
    cfg.eval.eval_steps = cfg.eval.save_steps = cfg.eval.logging_steps = 1
    cfg.eval.per_device_eval_batch_size = 4
    cfg.eval.general_sample = 0  # drift has its own tests (test_forgetting)
    cfg.report_to = ["tensorboard"]
    events = []
    before = os.environ.get("WANDB_API_KEY")
    os.environ["WANDB_API_KEY"] = FAKE_TRACKER_TOKEN
    try:
        engine = Engine(cfg, events.append, workspace=tmp_path_factory.mktemp("bundled-runs"))
        engine.run()
    finally:
        if before is None:
            os.environ.pop("WANDB_API_KEY", None)
        else:
            os.environ["WANDB_API_KEY"] = before
    assert isinstance(events[-1], RunFinished), events[-1]
    return engine.run_dir
