"""``tunetop estimate CONFIG.yaml``: exit codes and output with real YAML files."""

from __future__ import annotations

import json

import pytest
from transformers import LlamaConfig

from core import memory
from core.config import RunConfig
from tui.cli.estimate import EXIT_BAD_CONFIG, EXIT_FITS, EXIT_WONT_FIT, estimate_main

GIB = 1024**3


@pytest.fixture
def model_dir(tmp_path):
    """A local model directory with only a config.json (the estimate reads no weights)."""
    path = tmp_path / "tiny-llama"
    LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2).save_pretrained(path)
    return path


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"messages": [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "hello"}]}] * 3
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def memory_of(monkeypatch):
    """Pretend the machine has a GPU of the given size."""

    def set_gib(gib: float) -> None:
        monkeypatch.setattr(memory, "available_memory",
                            lambda nvml=None: memory.AvailableMemory(int(gib * GIB), "gpu", "Fake GPU"))

    return set_gib


def write_config(tmp_path, model_dir, data_file, **changes) -> str:
    config = RunConfig()
    config.model.name_or_path = str(model_dir)
    config.data.path = str(data_file)
    config = memory.apply_changes(config, changes)
    path = tmp_path / "run.yaml"
    config.save(path)
    return str(path)


def test_fits_exits_0_and_prints_the_breakdown(tmp_path, model_dir, data_file, memory_of, capsys):
    memory_of(80)
    path = write_config(tmp_path, model_dir, data_file)
    assert estimate_main(path) == EXIT_FITS
    out = capsys.readouterr().out
    for needle in ("Trainable parameters", "base weights", "activations", "total",
                   "Verdict: FITS", "Fake GPU"):
        assert needle in out
    # No tokenizer in the directory: the rows are not measured and max_length is assumed.
    assert "assuming data.max_length 512" in out


def test_will_not_fit_exits_1_with_suggestions(tmp_path, model_dir, data_file, memory_of, capsys):
    memory_of(0.6)
    path = write_config(tmp_path, model_dir, data_file, **{
        "optim.per_device_train_batch_size": 64, "data.max_length": 2048})
    assert estimate_main(path, longest_tokens=2048) == EXIT_WONT_FIT
    out = capsys.readouterr().out
    assert "Verdict: WILL NOT FIT" in out
    assert "To make it fit:" in out and "(fits)" in out
    assert "2048 tokens given on the command line" in out


def test_unknown_key_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rat: 0.001\n")
    assert estimate_main(str(path)) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "optim.learning_rat: unknown key" in err and "learning_rate" in err


def test_invalid_value_exits_2(tmp_path, model_dir, data_file, capsys):
    path = write_config(tmp_path, model_dir, data_file, **{"lora.r": 0})
    assert estimate_main(path) == EXIT_BAD_CONFIG
    assert "lora.r: rank 0 must be at least 1" in capsys.readouterr().err


def test_unknown_target_module_exits_2(tmp_path, model_dir, data_file, capsys):
    path = write_config(tmp_path, model_dir, data_file, **{"lora.target_modules": ["qkv"]})
    assert estimate_main(path) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "'qkv' is not in this model" in err and "q_proj, k_proj" in err


def test_missing_model_exits_2(tmp_path, data_file, capsys):
    path = write_config(tmp_path, tmp_path / "nowhere", data_file)
    assert estimate_main(path) == EXIT_BAD_CONFIG
    assert "does not exist" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert estimate_main(str(tmp_path / "absent.yaml")) == EXIT_BAD_CONFIG
    assert "does not exist" in capsys.readouterr().err


def test_an_absurd_rank_will_not_fit_with_numbers_and_a_fix(tmp_path, model_dir, data_file,
                                                               memory_of, capsys):
    memory_of(80)
    path = write_config(tmp_path, model_dir, data_file, **{"lora.r": 100_000_000})
    assert estimate_main(path, longest_tokens=64) == EXIT_WONT_FIT
    out = capsys.readouterr().out
    assert "Trainable parameters" in out and "Verdict: WILL NOT FIT" in out
    assert "lora.r 100000000 -> 64" in out and "(fits)" in out


def test_a_rank_beyond_any_integer_type_is_a_config_error(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("lora:\n  r: " + "1" + "0" * 29 + "\n")
    assert estimate_main(str(path)) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "lora.r: 1" + "0" * 29 + " is far too large" in err and "Traceback" not in err


def test_warnings_are_printed_and_the_estimate_goes_on(tmp_path, model_dir, data_file, memory_of,
                                                       capsys):
    memory_of(80)
    path = write_config(tmp_path, model_dir, data_file, **{"optim.learning_rate": 0.05})
    assert estimate_main(path) == EXIT_FITS
    out, err = capsys.readouterr()
    assert "Verdict: FITS" in out
    assert "tunetop estimate: warning: optim.learning_rate: 0.05 is far above the usual range" in err
