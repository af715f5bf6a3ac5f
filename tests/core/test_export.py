"""Export of a real run of the bundled model: the adapter and the merged model, read back by
peft and transformers, from the final model or a checkpoint; and every way an export cannot
work, each with a message whose fix is then shown to work."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from core.config import RunConfig
from core.events import RunStopped
from core.export import BUNDLED_HUB_ID, ExportError, export_adapter, export_merged
from core.export.common import dir_size
from tui.cli import main as cli_main


def _greedy(model, tokenizer, prompt="My router is broken"):
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                        add_generation_prompt=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                              do_sample=False)[0].tolist()


def _card(path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path / "README.md")


def test_adapter_export_loads_with_peft_and_its_card_names_the_hub_base(bundled_run, bundled_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    phases = []
    out = export_adapter(bundled_run, tmp_path / "adapter", progress=lambda p, f: phases.append(p))
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= names
    assert not names & {"training_args.bin", "optimizer.pt", "COMPLETE"}
    assert phases[-1] == "done"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bundled_dir), out)
    assert model.peft_config["default"].r == 16
    card = _card(out)
    assert card.data.base_model == BUNDLED_HUB_ID and card.data.library_name == "peft"
    assert card.data.base_model_relation == "adapter" and "tunetop" in card.data.tags
    assert card.data.datasets is None  # a local file, not a Hub dataset
    text = card.text
    assert "Best validation loss | " in text and "not measured" not in text.split("Best validation loss")[1].splitlines()[0]
    assert "method: lora" in text and "no review judged yet" in text and "report_to" in text


def test_merged_export_keeps_the_base_dtype_and_matches_base_plus_adapter(bundled_run, bundled_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, note = export_merged(bundled_run, tmp_path / "merged")
    assert note == "" and (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"  # the bundled base's
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(out)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bundled_dir),
                                             bundled_run / "final")
    assert _greedy(merged, tokenizer) == _greedy(with_adapter, tokenizer)
    card = _card(out)
    assert card.data.base_model == BUNDLED_HUB_ID and card.data.library_name == "transformers"
    assert "standalone merged model" in card.text


def test_merged_export_in_bf16_sharded_is_half_the_size_and_loads(bundled_run, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    fp32, _ = export_merged(bundled_run, tmp_path / "fp32")
    bf16, _ = export_merged(bundled_run, tmp_path / "bf16", dtype="bf16", max_shard_size="100MB")
    shards = sorted(p.name for p in bf16.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (bf16 / "model.safetensors.index.json").is_file()
    weights = lambda p: sum(f.stat().st_size for f in p.glob("*.safetensors"))  # noqa: E731
    assert 0.45 < weights(bf16) / weights(fp32) < 0.55, (weights(bf16), weights(fp32))
    model = AutoModelForCausalLM.from_pretrained(bf16)
    assert model.dtype == torch.bfloat16
    assert json.loads((bf16 / "tunetop_export.json").read_text())["dtype"] == "bfloat16"
    with pytest.raises(ExportError, match="not a size"):
        export_merged(bundled_run, tmp_path / "x", max_shard_size="big")
    with pytest.raises(ExportError, match="--dtype 'int4' is unknown"):
        export_merged(bundled_run, tmp_path / "x", dtype="int4")


def test_a_checkpoint_exports_by_number_or_by_path(bundled_run, tmp_path):
    from safetensors.torch import load_file

    by_number = export_adapter(bundled_run, tmp_path / "n", checkpoint=1)
    by_path = export_adapter(bundled_run / "checkpoints" / "checkpoint-1", tmp_path / "p")
    for out in (by_number, by_path):
        assert {p.name for p in out.iterdir()} >= {"adapter_model.safetensors", "README.md"}
        assert not (out / "optimizer.pt").exists() and not (out / "rng_state.pth").exists()
        assert "checkpoint at step 1" in (out / "README.md").read_text()
    step1 = load_file(by_number / "adapter_model.safetensors")
    final = load_file(bundled_run / "final" / "adapter_model.safetensors")
    assert any(not (step1[k] == final[k]).all() for k in final)  # another step's weights
    with pytest.raises(ExportError, match="has no checkpoint 9.*--checkpoint 1, --checkpoint 2"):
        export_adapter(bundled_run, tmp_path / "x", checkpoint=9)


def test_export_refuses_to_overwrite(bundled_run, tmp_path):
    export_adapter(bundled_run, tmp_path / "a")
    with pytest.raises(ExportError, match="already exists"):
        export_adapter(bundled_run, tmp_path / "a")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


# --- issue 15: every way an export cannot work, and the fix it suggests ---------------------


def _copy_run(bundled_run, tmp_path, name="copy"):
    run = tmp_path / name
    shutil.copytree(bundled_run, run)
    return run


def _suggested(message: str, program: str) -> list[str]:
    """The command after ``program`` that the fix of ``message`` suggests, as argv."""
    found = re.search(rf"{program} (.+?)(?:, or |\.$|$)", message.split("Fix:", 1)[1])
    assert found, message
    return shlex.split(found.group(1))


def test_a_stopped_run_suggests_a_checkpoint_export_that_works(bundled_run, tmp_path, capsys):
    run = _copy_run(bundled_run, tmp_path)
    shutil.rmtree(run / "final")
    lines = (run / "events.jsonl").read_text().splitlines()[:-1]  # drop run_finished
    stopped = RunStopped(step=2, reason="Stopped on request.", checkpoint=str(run / "checkpoints/checkpoint-2"))
    (run / "events.jsonl").write_text("\n".join(lines + [json.dumps(stopped.to_dict())]) + "\n")
    assert cli_main(["export", str(run)]) == 1
    err = capsys.readouterr().err
    assert "stopped at step 2" in err and "/checkpoints/checkpoints" not in err
    argv = _suggested(err.strip(), "tunetop")
    assert argv[:2] == ["export", str(run)] and "--checkpoint" in argv
    assert cli_main(argv) == 0
    assert (run / "export-adapter-checkpoint-2" / "adapter_model.safetensors").is_file()


def test_a_missing_directory_is_named_as_missing(tmp_path, capsys):
    (tmp_path / "runs" / "real").mkdir(parents=True)
    (tmp_path / "runs" / "real" / "config.yaml").write_text(RunConfig().to_yaml())
    assert cli_main(["export", str(tmp_path / "runs" / "typo")]) == 1
    err = capsys.readouterr().err
    assert "typo does not exist" in err and "has not finished" not in err and "runs/real" in err


def test_a_subfolder_in_final_is_exported_with_it(bundled_run, tmp_path):
    run = _copy_run(bundled_run, tmp_path)
    (run / "final" / "extra").mkdir()
    (run / "final" / "extra" / "notes.txt").write_text("kept")
    out = export_adapter(run, tmp_path / "out")
    assert (out / "extra" / "notes.txt").read_text() == "kept"


def test_out_below_a_regular_file_names_it_and_the_suggested_out_works(bundled_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli_main(["export", str(bundled_run), "--out", str(blocker / "adapter")]) == 1
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a folder" in err and "Traceback" not in err
    suggested = re.search(r"e\.g\. (\S+?)\.?$", err.strip()).group(1)
    assert cli_main(["export", str(bundled_run), "--out", suggested]) == 0


def test_a_gone_base_model_is_named_and_the_adapter_export_it_suggests_works(bundled_run, tmp_path, capsys):
    run = _copy_run(bundled_run, tmp_path)
    config = RunConfig.load(run / "config.yaml")
    config.model.name_or_path = str(tmp_path / "deleted-base")
    config.save(run / "config.yaml")
    assert cli_main(["export", str(run), "--merge"]) == 1
    err = capsys.readouterr().err
    assert "deleted-base is gone" in err and "model.name_or_path" in err
    assert cli_main(_suggested(err.strip(), "tunetop")) == 0


def test_a_pickle_adapter_is_never_loaded_and_the_suggested_conversion_works(bundled_run, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    run = _copy_run(bundled_run, tmp_path)
    weights = run / "final" / "adapter_model.safetensors"
    torch.save(load_file(weights), run / "final" / "adapter_model.bin")
    weights.unlink()
    for argv in (["export", str(run)], ["export", str(run), "--merge"]):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        assert "adapter_model.bin is a pickle file" in err and "nothing was loaded" in err
    command = shlex.split(err.strip().split("export again: ", 1)[1])
    assert command[:2] == ["python", "-c"]
    subprocess.run([sys.executable, "-c", command[2]], check=True)
    assert cli_main(["export", str(run)]) == 0
    assert dir_size(run / "export-adapter") > 0


def test_card_names_the_hub_datasets_a_run_read(tmp_path):
    from core.config import DataConfig, SourceConfig
    from core.export.card import hub_datasets

    local = tmp_path / "rows.jsonl"
    local.write_text('{"text": "x"}\n')
    assert hub_datasets(DataConfig(path="org/name:subset")) == ["org/name"]
    mix = DataConfig(sources=[SourceConfig(path="org/name", weight=1.0),
                              SourceConfig(path=str(local), weight=1.0),
                              SourceConfig(path="other/set", weight=1.0)])
    assert hub_datasets(mix) == ["org/name", "other/set"]
    assert hub_datasets(DataConfig(path=str(local))) == []
