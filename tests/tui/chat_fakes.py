"""A scripted causal LM for the chat screen's tests, snapshot and screenshot.

:class:`ScriptedModel` stands in for a transformers model in :func:`core.chat.stream_reply`:
``generate`` feeds a fixed answer's tokens, one by one, to the real ``TextStreamer`` and asks
the real stopping criteria after each, so streaming, stopping and the event path are the
real ones; only the weights are replaced. A per-token delay makes streaming observable.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from core.chat import ChatModels
from core.generate import ModelRef, TextGenerator

BASE_ANSWERS = (
    "I'm sorry to hear your invoice shows a double charge. As an AI assistant I can't see "
    "your account, but usually the second charge is a pending authorisation that disappears "
    "within a few days. If it stays, contact your bank or the billing team with the invoice "
    "number so they can refund it.",
    "You're welcome! Let me know if there is anything else I can help with.",
)
"""What an untuned model says: chatty, no JSON."""
TUNED_ANSWERS = (
    '{"category": "billing", "priority": "high", "product": "invoice"}',
    '{"category": "other", "priority": "low", "product": null}',
)
"""What the fine-tune says: the JSON the support-ticket task asks for."""


class ScriptedModel:
    """Generates the next scripted answer, token by token, through the given streamer."""

    def __init__(self, tokenizer: Any, answers: Sequence[str], delay: float = 0.0) -> None:
        self.tokenizer = tokenizer
        self.answers = itertools.cycle(answers)
        self.delay = delay
        self.generation_config = SimpleNamespace(bos_token_id=None,
                                                 eos_token_id=tokenizer.eos_token_id)
        self.prompts: list[str] = []
        """Every prompt generated for, decoded (tests check the template and system prompt)."""

    def generate(self, input_ids: Any, generation_config: Any, streamer: Any,
                 stopping_criteria: Any, **kwargs: Any) -> Any:
        import torch

        self.prompts.append(self.tokenizer.decode(input_ids[0]))
        streamer.put(input_ids)  # the prompt, skipped by the streamer
        ids = self.tokenizer(next(self.answers), add_special_tokens=False).input_ids
        ids = [*ids, self.tokenizer.eos_token_id][:generation_config.max_new_tokens]
        for token in ids:
            if self.delay:
                time.sleep(self.delay)
            streamer.put(torch.tensor([token]))
            if bool(stopping_criteria(input_ids, None).all()):
                break
        streamer.end()
        return input_ids


def scripted_models(tokenizer: Any, delay: float = 0.0,
                    answers: Callable[[ModelRef], Sequence[str]] | None = None,
                    load_seconds: float = 0.0) -> Callable[[], ChatModels]:
    """An ``AppServices.chat_models`` factory: run references answer with the fine-tune's
    JSON, other models chat (unless ``answers`` says otherwise); loading takes
    ``load_seconds``. ``factory.loads`` lists the refs of every load."""
    pick = answers or (lambda ref: TUNED_ANSWERS if ref.adapter else BASE_ANSWERS)
    loads: list[list[str]] = []

    def loader(refs: Sequence[ModelRef], device: Any, on_status: Any) -> list[TextGenerator]:
        loads.append([ref.spec for ref in refs])
        on_status(f"Loading {refs[0].model} on cpu…")
        time.sleep(load_seconds)
        return [TextGenerator(ScriptedModel(tokenizer, pick(ref), delay), tokenizer, None, "cpu")
                for ref in refs]

    def factory() -> ChatModels:
        return ChatModels(device="cpu", loader=loader)

    factory.loads = loads  # type: ignore[attr-defined]
    return factory
