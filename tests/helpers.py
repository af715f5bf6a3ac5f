"""Helpers shared by test modules (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations


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
    for key, value in optim.items():
        setattr(cfg.optim, key, value)
    return cfg
