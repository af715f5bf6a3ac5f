"""The installed libraries provide what the code calls, and meet pyproject's floors.

API drift in the training stack fails quietly: an unknown ``SFTConfig`` argument raises, but a
Trainer method the engine overrides that no longer exists is simply never called (the
non-finite check would vanish), and a float ``warmup_steps`` read as steps warms up for 0.05
of a step. Each check here names what the code relies on; ``.ci/floors`` runs the engine's
tests on exactly the pyproject floors.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parents[2]


def floors() -> dict[str, Version]:
    """``name -> floor`` of every ``>=`` requirement in pyproject.toml (the dev extra too)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                out[requirement.name] = Version(spec.version)
    return out


def test_every_dependency_has_a_floor_that_the_installed_version_meets():
    found = floors()
    assert {"torch", "transformers", "trl", "peft", "datasets", "textual"} <= set(found)
    for name, floor in found.items():
        installed = Version(importlib.metadata.version(name))
        # A local build tag (2.13.0+cpu) still meets its floor.
        assert installed >= floor, f"{name} {installed} is below the floor {floor} in pyproject.toml"


def engine_call_keywords(callee: str) -> set[str]:
    """Keyword names core/engine.py passes to ``callee(...)`` (read from its source)."""
    tree = ast.parse((ROOT / "core" / "engine.py").read_text())
    names: set[str] = set()
    spread: set[str] = set()  # ``**common``: the dict(...) assigned to that name
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == callee:
            names |= {k.arg for k in node.keywords if k.arg}
            spread |= {k.value.id for k in node.keywords if k.arg is None and isinstance(k.value, ast.Name)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "dict"
                and any(getattr(t, "id", None) in spread for t in node.targets)):
            names |= {k.arg for k in node.value.keywords if k.arg}
    assert names, f"no call of {callee} found in core/engine.py"
    return names


def test_sft_config_takes_every_argument_the_engine_passes():
    from trl import SFTConfig

    accepted = set(inspect.signature(SFTConfig).parameters)
    passed = engine_call_keywords("SFTConfig")
    assert {"padding_free", "train_sampling_strategy", "warmup_steps"} <= passed
    assert passed <= accepted, f"SFTConfig no longer takes {sorted(passed - accepted)}"


def test_a_fractional_warmup_is_a_share_of_the_steps(tmp_path):
    """The engine passes warmup_ratio as ``warmup_steps``: below 1 it must mean a share."""
    from trl import SFTConfig

    args = SFTConfig(output_dir=str(tmp_path), warmup_steps=0.05, max_steps=200, use_cpu=True,
                     report_to="none")
    assert args.get_warmup_steps(200) == 10


def test_trainer_methods_the_engine_overrides_still_exist():
    """An override of a method the Trainer stopped calling would silently do nothing."""
    from trl import SFTTrainer

    from core.trainer import make_trainer

    source = inspect.getsource(make_trainer)
    overridden = set(re.findall(r"^        def (\w+)\(self", source, flags=re.MULTILINE))
    assert {"training_step", "_clip_grad_norm", "_save_checkpoint"} <= overridden
    for name in overridden - {"take_tokens"}:
        assert callable(getattr(SFTTrainer, name, None)), f"SFTTrainer has no {name} to override"


def test_library_names_the_code_imports_exist():
    import transformers.trainer
    import transformers.trainer_utils
    import trl.trainer.utils
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training  # noqa: F401
    from transformers import TrainerState, masking_utils

    assert transformers.trainer.TRAINER_STATE_NAME == "trainer_state.json"
    assert "best_model_checkpoint" in inspect.signature(transformers.trainer_utils.rotate_checkpoints).parameters
    assert hasattr(masking_utils, "find_packed_sequence_indices")  # padding-free batches on CPU
    assert callable(getattr(trl.trainer.utils, "_use_triton", None))  # score_trained_positions_only
    assert hasattr(TrainerState(), "best_global_step")


def test_textual_features_the_app_uses():
    from textual.app import App
    from textual.binding import Binding

    assert Binding.Group("Move", compact=True).compact
    assert "loop" in inspect.signature(App.run).parameters  # tui.cli.app.run_app
    assert callable(getattr(App, "get_screen_stack", None))  # quitting from the training screen


def test_the_login_command_the_hints_suggest_is_installed():
    """Model-load errors suggest `hf auth login`; older hubs only had huggingface-cli."""
    scripts = {ep.name for ep in importlib.metadata.distribution("huggingface_hub").entry_points
               if ep.group == "console_scripts"}
    assert "hf" in scripts
