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
    for phase in ("Loading data from", "Loading the tokenizer of", "Tokenizing rows…",
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
    # A directory that passes the launcher's cheap checks (it has a config.json) and fails
    # in the worker, which loads it.
    (tmp_path / "no-such-model").mkdir()
    (tmp_path / "no-such-model" / "config.json").write_text("{}")
    cfg.model.name_or_path = str(tmp_path / "no-such-model")
    cfg.save(tmp_path / "bg.yaml")
    assert main(["train", str(tmp_path / "bg.yaml"), "--detach", "--workspace", str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err
    run_dir = tmp_path / "runs" / "background"
    assert "detached, one process" in err and f"tunetop attach {run_dir}" in err
    final = list(follow_run(run_dir, poll_interval=0.1))[-1]
    assert isinstance(final, RunFailed) and "no-such-model" in final.reason


def test_version_env_and_completion(tmp_path):
    import shutil

    from core.envinfo import tunetop_version

    version = tunetop("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"tunetop {tunetop_version()}"
    env = tunetop("env")
    assert env.returncode == 0, env.stderr
    names = [line.split()[0] for line in env.stdout.splitlines()]
    for name in ("tunetop", "python", "torch", "transformers", "trl", "peft", "bitsandbytes", "cuda", "gpu"):
        assert name in names, env.stdout
    script = tunetop("completion", "bash")
    assert script.returncode == 0 and "_shtab_tunetop" in script.stdout
    if shutil.which("bash"):
        (tmp_path / "tunetop.bash").write_text(script.stdout)
        done = subprocess.run(
            ["bash", "-c", f"source {tmp_path / 'tunetop.bash'}; COMP_WORDS=(tunetop export --ou); "
                           "COMP_CWORD=2; _shtab_tunetop; echo ${COMPREPLY[@]}"],
            capture_output=True, text=True, check=True)
        assert done.stdout.split() == ["--outtype", "--out"]


def test_export_options_that_do_not_go_together_exit_2(tmp_path):
    for argv, expected in ((["--outtype", "q8_0"], "add --gguf"),
                           (["--private"], "add --push-to-hub"),
                           (["--gguf", "--push-to-hub", "me/x"], "go separately"),
                           (["--dtype", "bf16"], "add --merge")):
        result = tunetop("export", tmp_path, *argv)
        assert result.returncode == 2 and expected in result.stderr, (argv, result.stderr)


def test_train_puts_the_run_in_output_dir_unless_workspace_overrides_it(tmp_path, capsys,
                                                                         keep_signal_handlers,
                                                                         bundled_dir):
    """The run directory goes where the config's output_dir says, or where --workspace says;
    its saved config.yaml records the one used. (A model directory without weights ends the
    run right after the directory is made, which happens once the data and tokenizer were
    read.)"""
    import shutil

    from core.config import RunConfig
    from tui.cli import main

    cfg = RunConfig(output_dir=str(tmp_path / "from-config"))
    shutil.copytree(bundled_dir, tmp_path / "no-weights",
                    ignore=shutil.ignore_patterns("*.safetensors"))
    cfg.model.name_or_path = str(tmp_path / "no-weights")
    cfg.save(tmp_path / "run.yaml")
    assert main(["train", str(tmp_path / "run.yaml")]) == 1
    (run_dir,) = (tmp_path / "from-config").iterdir()
    assert RunConfig.load(run_dir / "config.yaml").output_dir == str(tmp_path / "from-config")
    assert main(["train", str(tmp_path / "run.yaml"), "--workspace", str(tmp_path / "flag")]) == 1
    assert main(["--workspace", str(tmp_path / "top"), "train", str(tmp_path / "run.yaml")]) == 1
    for where in ("flag", "top"):
        (run_dir,) = (tmp_path / where).iterdir()
        assert RunConfig.load(run_dir / "config.yaml").output_dir == str(tmp_path / where)
    assert len(list((tmp_path / "from-config").iterdir())) == 1
    assert "no-weights" in capsys.readouterr().err


def test_the_app_opens_on_the_configs_output_dir(tmp_path, monkeypatch):
    import tui.cli.app
    from core.config import RunConfig
    from tui.cli import main

    opened = []
    monkeypatch.setattr(tui.cli.app, "run_app", lambda app: opened.append(app) or 0)
    RunConfig(output_dir=str(tmp_path / "ws")).save(tmp_path / "run.yaml")
    assert main(["--config", str(tmp_path / "run.yaml")]) == 0
    assert main(["--config", str(tmp_path / "run.yaml"), "--workspace", str(tmp_path / "other")]) == 0
    assert main([]) == 0
    assert [str(app.workspace) for app in opened] == [str(tmp_path / "ws"), str(tmp_path / "other"),
                                                      "runs"]


def test_train_prints_warnings_and_goes_on(tmp_path, capsys, keep_signal_handlers):
    from core.config import RunConfig
    from tui.cli import main

    cfg = RunConfig(output_dir=str(tmp_path / "ws"))
    cfg.optim.learning_rate = 0.05
    cfg.data.path = str(tmp_path / "missing.jsonl")
    cfg.save(tmp_path / "run.yaml")
    assert main(["train", str(tmp_path / "run.yaml")]) == 1  # the missing data, not the warning
    err = capsys.readouterr().err
    assert "tunetop train: warning: optim.learning_rate: 0.05 is far above the usual range" in err
    assert "missing.jsonl" in err


def test_inspect_refuses_a_token_budget_below_16(tmp_path, capsys):
    import pytest

    from tui.cli import main

    for value, words in (("-1000", "-1000 tokens per row is too few"),
                         ("0", "0 tokens per row is too few"), ("lots", "'lots' is not a whole number"),
                         ("1" + "0" * 20, "10000000000000000000... tokens per row is far too many")):
        with pytest.raises(SystemExit) as exit_:
            main(["inspect", "sample:support-tickets", "--max-length", value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "argument --max-length: " + words in err, err
        assert "e.g. --max-length " in err


def test_a_reader_that_goes_away_ends_the_command_quietly(tiny_model_dir, tmp_path):
    """``tunetop inspect FILE | head -1``: no traceback when the pipe closes; the status of a
    command killed by SIGPIPE. Both ways out: a print that fails (inspect), and the flush of
    what is still buffered at exit (completion prints its script in one go)."""
    data = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text("\n".join(json.dumps(row) for _ in range(50)) + "\n")
    for args in (["inspect", data, "--model", tiny_model_dir], ["completion", "bash"]):
        child = subprocess.Popen([sys.executable, "-m", "tui.cli", *map(str, args)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        child.stdout.close()  # the reader is gone before the first line is written
        _, err = child.communicate(timeout=600)
        assert child.returncode == 141, err.decode()
        assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
