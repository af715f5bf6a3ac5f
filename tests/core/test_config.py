"""Config dataclasses: defaults, YAML round trip, and validation that reports every problem."""

from __future__ import annotations

import pytest

from core.config import ConfigError, RunConfig


def test_defaults_follow_current_practice_and_are_valid():
    cfg = RunConfig()
    assert cfg.validate() == []
    assert (cfg.lora.r, cfg.lora.lora_alpha, cfg.lora.lora_dropout) == (16, 32, 0.05)
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.optim.learning_rate == 2e-4 and cfg.optim.num_train_epochs == 3
    assert cfg.data.assistant_only_loss and cfg.data.validation_fraction == 0.1
    assert cfg.eval.early_stopping_patience > 0
    assert cfg.model.trust_remote_code is False


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig(method="qlora")
    cfg.lora.r = 8
    cfg.lora.target_modules = ["q_proj", "v_proj"]
    cfg.optim.learning_rate = 1e-4
    cfg.data.path = "data/train.jsonl"
    path = tmp_path / "run.yaml"
    cfg.save(path)
    back = RunConfig.load(path)
    assert back == cfg


def test_validate_reports_every_problem_with_field_and_fix():
    cfg = RunConfig(method="dpo")
    cfg.lora.r = 0
    cfg.optim.learning_rate = -1.0
    cfg.optim.per_device_train_batch_size = 0
    cfg.data.validation_fraction = 1.5
    fields = {p.field: p for p in cfg.validate()}
    assert {"method", "lora.r", "optim.learning_rate", "optim.per_device_train_batch_size",
            "data.validation_fraction"} <= set(fields)
    assert all(p.fix for p in fields.values())
    with pytest.raises(ConfigError) as err:
        cfg.check()
    assert "lora.r" in str(err.value) and "optim.learning_rate" in str(err.value)


def test_unknown_keys_and_wrong_types_are_all_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "method: lora\n"
        "lora:\n  r: sixteen\n  alpah: 32\n"
        "optim:\n  learning_rate: 2e-4\n  num_train_epochs: true\n"
        "colour: blue\n"
    )
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    fields = [p.field for p in err.value.problems]
    assert fields == ["lora.r", "lora.alpah", "optim.num_train_epochs", "colour"]
    assert "Did you mean" in str(err.value.problems[1])
    assert str(path) in str(err.value)


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("optim:\n  learning_rate: 2e-4\n")
    assert RunConfig.load(path).optim.learning_rate == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "text, field",
    [("method: [lora\n", "(yaml line 2)"), ("- a\n- b\n", "(top level)"), ("lora: 3\n", "lora")],
)
def test_malformed_yaml_names_the_place(tmp_path, text, field):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    assert err.value.problems[0].field.startswith(field)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "nope.yaml")
