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


# --- issue 15: every problem at once, warnings, values validate() used to let through -----


def test_type_errors_and_invalid_values_are_reported_together(tmp_path):
    """``lora: {r: -1}`` beside two other mistakes: all three in one error."""
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  r: -1\noptim:\n  learning_rate: fast\n  warmup_ratio: 2\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    assert [p.field for p in err.value.problems] == [
        "optim.learning_rate", "lora.r", "optim.warmup_ratio"]
    assert "3 problem(s)" in str(err.value)


def test_a_learning_rate_far_above_the_usual_range_is_a_warning(tmp_path):
    cfg = RunConfig()
    cfg.optim.learning_rate = 0.05
    (problem,) = cfg.validate()
    assert problem.field == "optim.learning_rate" and problem.severity == "warning"
    assert not problem.is_error and "far above the usual range for lora" in problem.message
    assert cfg.errors() == []
    cfg.check()  # a warning never raises
    cfg.method = "full"
    cfg.optim.learning_rate = 2e-4  # usual for LoRA, ten times the usual for full
    assert cfg.validate() == []
    cfg.optim.learning_rate = 1e-3
    assert [p.severity for p in cfg.validate()] == ["warning"]


def float_fields(obj, prefix=""):
    import dataclasses

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from float_fields(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            yield f"{prefix}{f.name}"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_every_float_field_must_be_finite(tmp_path, value):
    names = list(float_fields(RunConfig()))
    assert {"optim.weight_decay", "optim.max_grad_norm", "lora.lora_dropout"} <= set(names)
    for name in names:
        section, key = name.split(".")
        path = tmp_path / "c.yaml"
        path.write_text(f"{section}:\n  {key}: {value}\n")
        cfg = RunConfig.load(path)
        (problem,) = cfg.errors()  # one problem, not also "must be positive"
        assert problem.field == name and "not a finite number" in problem.message, problem


@pytest.mark.parametrize("text, field, words", [
    ("optim:\n  seed: -1\n", "optim.seed", "seeds go from 0 to 4294967295"),
    ("optim:\n  seed: 4294967296\n", "optim.seed", "out of range"),
    ("optim:\n  max_steps: 100000000000000000000\n", "optim.max_steps", "far too large"),
    ("lora:\n  r: 100000000000000000000000000000\n", "lora.r", "far too large"),
    ("model:\n  attn_implementation: flash\n", "model.attn_implementation",
     "not an attention implementation"),
    ("output_dir: ''\n", "output_dir", "is empty"),
])
def test_out_of_range_values_name_the_field(tmp_path, text, field, words):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    (problem,) = RunConfig.load(path).errors()
    assert problem.field == field and words in problem.message and problem.fix


@pytest.mark.parametrize("name, words", [
    ("../../escaped-run", "is a path"), ("/tmp/elsewhere", "is an absolute path"),
    ("a\\b", "is a path"), ("..", "names a folder"), (".", "names a folder"),
    ("", "is empty"), ("  ", "is empty"), ("bad\0name", "NUL"), ("two\nlines", "control character"),
    ("x" * 201, "longer than 200 bytes"),
])
def test_run_name_must_be_one_folder_name(name, words):
    (problem,) = RunConfig(run_name=name).errors()
    assert problem.field == "run_name" and words in problem.message
    assert "one folder name" in problem.fix


def test_ordinary_run_names_are_fine():
    for name in ("my-run", "lora_r16 v2", "2025-01-01.run", "ünïcode"):
        assert RunConfig(run_name=name).errors() == []


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: lora\nlora:\n  r: 8\n  r: 16\nmethod: full\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    messages = {p.field: p.message for p in err.value.problems}
    assert messages["method"].startswith("is set twice, on line 1 (lora) and line 5 (full)")
    assert messages["lora.r"].startswith("is set twice, on line 3 (8) and line 4 (16)")


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    """A few hundred bytes that expand to 9^9 (387 million) names if anything walks them."""
    levels = ["&a [" + ",".join(["q"] * 9) + "]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"&{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "lora:\n  target_modules: " + levels[-1] + "\n"
    # nest the anchors: each level's list is built from the previous one
    text = "anchors: [" + ", ".join(levels[:-1]) + "]\n" + text
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert len(text) < 600
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path)
    message = str(err.value)
    assert "lora.target_modules: expected list of names" in message
    assert "anchors: unknown key" in message
    assert len(message) < 1500


def test_a_long_list_is_refused_before_it_is_walked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  target_modules: [" + ", ".join(["q_proj"] * 5000) + "]\n")
    with pytest.raises(ConfigError, match="has 5,000 items; no setting takes more than 1,000"):
        RunConfig.load(path)


def test_a_huge_file_is_not_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="is over 1024 KB"):
        RunConfig.load(path)


def test_config_paths_that_are_links_say_so(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="symbolic link that loops back on itself"):
        RunConfig.load(loop)
    broken = tmp_path / "broken.yaml"
    broken.symlink_to(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match="broken symbolic link"):
        RunConfig.load(broken)
    with pytest.raises(ConfigError, match="is a directory"):
        RunConfig.load(tmp_path)
