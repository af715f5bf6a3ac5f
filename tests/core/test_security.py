"""Security defaults: no secret reaches a run directory, no pickle weights, no remote code."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_run_config

from core.config import ConfigError, RunConfig
from core.models import ModelError, load_model

SECRETS = {
    "HF_TOKEN": "hf_PLANTEDsecretTOKEN1234567890",
    "HUGGING_FACE_HUB_TOKEN": "hf_PLANTEDsecondTOKEN0987654321",
    "WANDB_API_KEY": "PLANTEDwandbKEY5555555555",
}


def test_planted_tokens_never_reach_any_file_or_output(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=4)
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    cfg.save(tmp_path / "run.yaml")
    env = {**os.environ, **SECRETS, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "train", str(tmp_path / "run.yaml"), "--workspace",
         str(tmp_path / "ws")], capture_output=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in (tmp_path / "ws").rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in files) and len(files) > 10
    for secret in SECRETS.values():
        needle = secret.encode()
        assert needle not in result.stdout and needle not in result.stderr
        for path in files:
            assert needle not in path.read_bytes(), f"{secret} found in {path}"


def test_token_keys_are_refused_in_configs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hub_token: hf_abc\n")
    with pytest.raises(ConfigError, match="model.hub_token: unknown key"):
        RunConfig.load(path)


def test_pickle_weights_need_an_explicit_opt_in(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    pickled = tmp_path / "pickled"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    pickled.mkdir()
    model.config.save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    cfg = RunConfig().model
    cfg.name_or_path = str(pickled)
    with pytest.raises(ModelError, match="allow_pickle_weights"):
        load_model(cfg, "lora", "fp32", "cpu")
    cfg.allow_pickle_weights = True
    loaded = load_model(cfg, "lora", "fp32", "cpu")
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_remote_code_is_off_by_default():
    assert RunConfig().model.trust_remote_code is False


def test_planted_tokens_stay_out_of_a_detached_run_and_its_arguments(tmp_path, monkeypatch):
    """The worker inherits the environment (it may need HF_TOKEN for a gated model) but never
    puts a secret on its command line or in its files."""
    from pathlib import Path

    from core.detach import follow_run, launch_detached, request_stop

    tui_tests = str(Path(__file__).parents[1] / "tui")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    run_dir = launch_detached(RunConfig(run_name="secret-run"), tmp_path / "runs", engine="fakes:ScriptedEngine",
                              env={"PYTHONPATH": tui_tests, "FAKE_ENGINE_DELAY": "0.01", "FAKE_ENGINE_HOLD": "2"})
    pid = int((run_dir / "worker.pid").read_text())
    for _ in range(500):  # /proc shows the worker's own arguments and environment once it has exec'd
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"core.worker" in cmdline:
            break
        time.sleep(0.01)
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"core.worker" in cmdline, cmdline
    assert SECRETS["HF_TOKEN"].encode() in environ, "the worker still gets the token it may need"
    for event in follow_run(run_dir, poll_interval=0.05):
        if type(event).__name__ == "StepLogged":
            request_stop(run_dir)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"config.yaml", "events.jsonl", "worker.log"} <= {p.name for p in files}
    for secret in SECRETS.values():
        assert secret.encode() not in cmdline
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{secret} found in {path}"


@pytest.mark.parametrize("name", ["../../escaped-run", "../escaped-run", "/tmp/tunetop-escaped-run",
                                  "nested/run"])
def test_a_run_name_cannot_put_the_run_outside_the_workspace(tmp_path, monkeypatch, name):
    """Every way into a run directory refuses a run_name that is not one folder name."""
    from core.detach import launch_detached
    from core.engine import Engine
    from core.events import RunFailed

    monkeypatch.chdir(tmp_path)
    workspace = tmp_path / "a" / "b" / "ws"
    cfg = RunConfig(run_name=name)
    events = []
    Engine(cfg, events.append, workspace=workspace).run()
    assert isinstance(events[-1], RunFailed) and "run_name" in events[-1].reason
    with pytest.raises(ConfigError, match="run_name: .* not one folder name"):
        launch_detached(cfg, workspace)
    path = tmp_path / "run.yaml"
    cfg.save(path)
    from tui.cli import main

    assert main(["train", str(path), "--workspace", str(workspace)]) == 2
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} - {Path("run.yaml")}
    assert made == set(), f"directories made: {made}"
    assert not Path("/tmp/tunetop-escaped-run").exists()
