"""The trainer the engine builds: TRL's, with the engine's additions, and its arguments.

:func:`make_trainer` subclasses ``SFTTrainer``, ``DPOTrainer`` or ``ORPOTrainer`` to count
trained tokens, stop on non-finite values and publish checkpoints whole;
:func:`fsdp_args` shards a full fine-tune across launched processes;
:func:`score_trained_positions_only` makes TRL's fused LM head skip untrained positions on CPU;
:func:`preference_trainer` builds DPO's or ORPO's.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.callbacks import EventCallback, NonFiniteError
from core.config import RunConfig
from core.rundir import checkpoint_name, publish_checkpoint, staging_dir


@dataclass(frozen=True)
class RunInputs:
    """What :meth:`Engine.setup` settles once and every trainer of the run is built from
    (the first, and each rebuild after an out-of-memory retry)."""

    tokenizer: Any
    train_rows: list[dict]
    """Rows for the trainer: ``input_ids`` and ``labels`` (masked tokens are -100)."""
    val_rows: list[dict]
    """Tokenized validation rows; empty when nothing is held out."""
    precision: str
    """``bf16``, ``fp16`` or ``fp32``, resolved for the device."""
    device: str
    """``cuda`` or ``cpu`` (:func:`core.models.pick_device`)."""


def fsdp_args(cfg: RunConfig) -> dict[str, Any]:
    """Trainer arguments that shard a full fine-tune with FSDP across the launched processes."""
    if cfg.distributed_strategy != "fsdp" or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return {}
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {"use_orig_params": True, "cpu_ram_efficient_loading": True},
    }


def score_trained_positions_only() -> None:
    """Make TRL's fused LM head skip untrained positions on CPU too (idempotent).

    TRL projects only the positions with a label through the LM head on Triton devices; on
    other devices it projects every position so that tile shapes stay fixed for compilers.
    Eager CPU has nothing to recompile, and with assistant-only loss most positions are
    prompt: measured on the bundled model, a step took 0.6x the time. The loss and gradients
    are the same (untrained positions contribute zero either way).
    """
    import trl.trainer.utils as trl_utils

    # A private name: if TRL renames it, runs keep working without the saving, and
    # test_lm_head_scores_only_trained_positions_with_the_same_loss_and_gradients fails.
    use_triton = getattr(trl_utils, "_use_triton", None)
    if use_triton is None or getattr(use_triton, "tunetop", False):
        return

    def compact(device: Any) -> bool:
        return device.type == "cpu" or use_triton(device)

    compact.tunetop = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


def make_trainer(base: type, **kwargs: Any) -> Any:
    """Build a subclass of the TRL trainer ``base`` (SFT, DPO or ORPO) that counts tokens,
    refuses non-finite values and publishes each checkpoint with one rename."""
    import torch

    score_trained_positions_only()

    class TunetopTrainer(base):
        """The trainer counting non-padding tokens and stopping on the first non-finite value."""

        _tokens = 0

        def take_tokens(self) -> int:
            count, self._tokens = int(self._tokens), 0
            return count

        def training_step(self, model, inputs, num_items_in_batch=None):
            # SFT and DPO batches have one attention mask; ORPO's has one per answer.
            masks = [v for k, v in inputs.items() if k.endswith("attention_mask")]
            self._tokens += (sum(int(m.sum()) for m in masks) if masks
                             else inputs["input_ids"].numel())
            loss = super().training_step(model, inputs, num_items_in_batch)
            if not torch.isfinite(loss).all():
                raise NonFiniteError(
                    f"Loss became {float(loss)} at step {self.state.global_step + 1}; the run "
                    f"stopped before the optimizer step."
                )
            return loss

        def _clip_grad_norm(self, model):
            norm = super()._clip_grad_norm(model)
            if norm is not None and not math.isfinite(float(norm)):
                raise NonFiniteError(
                    f"Gradient norm became {float(norm)} at step {self.state.global_step + 1}; "
                    f"the run stopped before the optimizer step."
                )
            return norm

        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            if "ref" in getattr(self.model, "peft_config", {}):
                # DPO's frozen reference adapter: rebuilt from the starting weights at every
                # start, so a copy in each checkpoint and in final/ is only dead weight.
                shutil.rmtree(Path(output_dir or self.args.output_dir) / "ref", ignore_errors=True)

        def _save_checkpoint(self, model, trial):
            """Write the checkpoint in a staging directory, then publish it with one rename."""
            from transformers.trainer import TRAINER_STATE_NAME
            from transformers.trainer_utils import rotate_checkpoints

            callback = next(c for c in self.callback_handler.callbacks if isinstance(c, EventCallback))
            callback.checkpoint_begins(self.state.global_step)
            root, step = self.args.output_dir, self.state.global_step
            staging = staging_dir(root, step)  # one name for every rank: they all write into it
            self.args.output_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # a failed write (disk full) leaves nothing
                raise
            finally:
                self.args.output_dir = root
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                best = self.state.best_global_step
                if best and (best == step or Path(root, checkpoint_name(best)).is_dir()):
                    # The state saved above names the staging path; name the published one.
                    self.state.best_model_checkpoint = str(Path(root, checkpoint_name(best)))
                    self.state.save_to_json(str(staging / checkpoint_name(step) / TRAINER_STATE_NAME))
                publish_checkpoint(staging, step)
                rotate_checkpoints(root, self.args.save_total_limit, self.state.best_model_checkpoint)
            self.accelerator.wait_for_everyone()

    return TunetopTrainer(**kwargs)


def preference_trainer(cfg: RunConfig, model: Any, common: dict[str, Any], datasets: dict[str, Any],
                       load_reference: Callable[[], Any], log: Callable[..., None]) -> Any:
    """TRL's ``DPOTrainer`` or ``ORPOTrainer`` over the pairs, with the same arguments
    (``common``), callbacks and checkpoints as SFT; ``log(message, level=...)`` says what it does.

    DPO's reference is the model as training starts: with LoRA, TRL keeps it as a frozen
    copy of the starting adapter (the base for a fresh one, the SFT run's for
    ``model.adapter``), so no second model is loaded; a full fine-tune loads a second copy
    of the starting weights (``load_reference``). ORPO needs no reference.
    """
    p = cfg.preference
    train_rows = len(datasets["train_dataset"])
    if cfg.objective == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=p.beta, loss_type=[p.loss_type],
                         max_length=cfg.data.max_length)
        ref_model = None
        if cfg.method == "full":
            log("Loading a second copy of the model as DPO's frozen reference.")
            ref_model = load_reference().eval()
            ref_model.requires_grad_(False)
        trainer = make_trainer(DPOTrainer, model=model, ref_model=ref_model, args=args, **datasets)
    else:
        import warnings

        with warnings.catch_warnings():  # TRL warns on import that ORPO is experimental
            warnings.simplefilter("ignore")
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=p.beta, max_length=cfg.data.max_length,
                          remove_unused_columns=False)
        trainer = make_trainer(ORPOTrainer, model=model, args=args, **datasets)
    dropped = train_rows - len(trainer.train_dataset)
    if dropped:
        log(f"Dropped {dropped} training pairs whose prompt alone fills max_length "
                 f"{cfg.data.max_length}: nothing of their answers would be trained.",
                 level="warning")
    return trainer
