"""The headless CLI as a user runs it: real processes, real files, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import tiny_run_config

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def tunetop(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tui.cli", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=600)


def test_train_runs_headless_and_prints_progress(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=6)
    cfg.eval.eval_steps = cfg.eval.save_steps = 3
    cfg.save(tmp_path / "run.yaml")
    result = tunetop("train", tmp_path / "run.yaml", "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "Finished at step 6" in result.stderr and "validation loss" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (run_dir,) = (tmp_path / "ws").iterdir()
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "run_finished"
    # What happens before the first step is said; the bar's ETA is the run's own.
    for phase in ("Loading data from", "Loading the tokenizer of", "Tokenizing training rows…",
                  "Loading the model", "Building the trainer…"):
        assert phase in result.stderr, phase
    assert "ETA 0:00:00" in result.stderr and "-:--:--" not in result.stderr
    # Library noise (transformers' FutureWarnings) is in the run's debug.log, not on stderr.
    assert "FutureWarning" not in result.stderr + result.stdout
    assert "FutureWarning" in (run_dir / "debug.log").read_text()


def test_train_with_a_bad_config_lists_every_field_and_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("lora:\n  r: 0\noptim:\n  learning_rate: -1\n  epochs: 3\n")
    result = tunetop("train", tmp_path / "bad.yaml")
    assert result.returncode == 2
    for field in ("optim.epochs", "Did you mean num_train_epochs"):
        assert field in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "bad.yaml").write_text("lora:\n  r: 0\noptim:\n  learning_rate: -1\n")
    result = tunetop("train", tmp_path / "bad.yaml", "--workspace", tmp_path / "ws")
    assert result.returncode == 2 and "lora.r" in result.stderr and "optim.learning_rate" in result.stderr
    assert not (tmp_path / "ws").exists()


def test_train_with_a_missing_model_fails_with_a_readable_reason(small_data, tmp_path):
    cfg = tiny_run_config(tmp_path / "nowhere", small_data)
    cfg.save(tmp_path / "run.yaml")
    result = tunetop("train", tmp_path / "run.yaml", "--workspace", tmp_path / "ws")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_inspect_reports_format_tokens_and_problems(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}
    data.write_text(json.dumps(row) + "\n" + "{not json\n" + json.dumps(row) + "\n")
    result = tunetop("inspect", data, "--model", tiny_model_dir, "--max-length", 64)
    assert result.returncode == 0, result.stderr
    assert "format    messages" in result.stdout
    assert "2 usable of 3; 1 dropped" in result.stdout
    assert "line 2" in result.stdout and "exact duplicates" in result.stdout


def test_inspect_of_unusable_data_exits_non_zero(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    result = tunetop("inspect", tmp_path / "empty.jsonl")
    assert result.returncode == 1 and "empty.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_detach_prints_the_run_and_returns_at_once(tmp_path, capsys):
    from core.config import RunConfig
    from core.detach import follow_run
    from core.events import RunFailed
    from tui.cli import main

    cfg = RunConfig(run_name="background")
    cfg.model.name_or_path = str(tmp_path / "no-such-model")
    cfg.save(tmp_path / "bg.yaml")
    assert main(["train", str(tmp_path / "bg.yaml"), "--detach", "--workspace", str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err
    run_dir = tmp_path / "runs" / "background"
    assert "detached, one process" in err and f"tunetop attach {run_dir}" in err
    final = list(follow_run(run_dir, poll_interval=0.1))[-1]
    assert isinstance(final, RunFailed) and "no-such-model" in final.reason
