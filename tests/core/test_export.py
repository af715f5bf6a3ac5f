"""Export: adapter alone and merged model, both loadable by plain libraries, with a model card."""

from __future__ import annotations

import pytest
from helpers import tiny_run_config

from core.engine import Engine
from core.events import RunFinished
from core.export import ExportError, export_adapter, export_merged
from tui.cli.export import export_main


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, small_data, tmp_path_factory):
    events = []
    engine = Engine(tiny_run_config(tiny_model_dir, small_data, max_steps=6), events.append,
                    workspace=tmp_path_factory.mktemp("runs"))
    engine.run()
    assert isinstance(events[-1], RunFinished), events[-1]
    return engine.run_dir


def _greedy(model, tokenizer):
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": "My router is broken"}],
                                        add_generation_prompt=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                              do_sample=False)[0].tolist()


def test_adapter_export_loads_with_peft_and_has_a_model_card(finished_run, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = export_adapter(finished_run, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "training_args.bin").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert model.peft_config["default"].r == 16
    card = (out / "README.md").read_text()
    assert str(tiny_model_dir) in card and "Best validation loss | " in card
    assert "not measured" not in card.split("Best validation loss")[1].splitlines()[0]
    assert "method: lora" in card and "no review judged yet" in card


def test_merged_export_matches_base_plus_adapter_greedy_output(finished_run, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, note = export_merged(finished_run, tmp_path / "merged")
    assert note == ""
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(out)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                             finished_run / "final")
    assert _greedy(merged, tokenizer) == _greedy(with_adapter, tokenizer)
    assert "standalone merged model" in (out / "README.md").read_text()


def test_export_refuses_to_overwrite_and_unfinished_runs(finished_run, tmp_path):
    export_adapter(finished_run, tmp_path / "a")
    with pytest.raises(ExportError, match="already exists"):
        export_adapter(finished_run, tmp_path / "a")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((finished_run / "config.yaml").read_text())
    assert export_main(str(unfinished), None, merge=False) == 1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
