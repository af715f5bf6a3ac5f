"""Chat with one or two models: streamed replies, multi-turn, as the run trained.

A chat talks to model references exactly like the review (:func:`core.generate.resolve_ref`:
``base``, a run's final output, a checkpoint, a hub id, a local directory), loaded the same
way (:func:`core.generate.load_generators`: safetensors, ``trust_remote_code`` from the run's
config). Two sides on one base share its weights, so switching between a base and its
fine-tune, or talking to both, loads the base once (:class:`ChatModels` keeps what it loaded).

Prompts are rendered as training rendered rows: the run's ``data.chat_template`` and
``data.default_system_prompt`` (:func:`core.data.render.render_generation_prompt`), unless the
user gives a system prompt of their own.

Replies stream through transformers' ``TextStreamer`` (its ``on_finalized_text`` hook), called
from ``model.generate`` in the caller's thread: the UI runs :func:`stream_turn` in a worker and
receives plain frozen events (:class:`ChatPhase`, :class:`ReplyStreamed`,
:class:`ReplyFinished`). A ``threading.Event`` stops a reply at the next token and keeps
what was written.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import DataConfig
from core.data.render import render_generation_prompt
from core.data.template_probe import RenderOptions
from core.generate import (
    GenerationSettings,
    ModelRef,
    TextGenerator,
    cut_at_end_of_turn,
    load_generators,
    run_dir_of,
    run_render_options,
    stop_criteria,
)
from core.review import PromptItem, ReviewSet
from core.review.store import default_set_name

CHAT_PROMPTS = "chat"
"""The prompts source recorded in a review set filled from the chat."""
CHATS_DIR = "chats"
"""Sub-directory of the workspace that holds saved conversations (one JSON file each)."""
CHAT_FORMAT = 1


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPhase:
    """What the chat is doing before text arrives: loading a model, reading the prompt."""

    text: str


@dataclass(frozen=True)
class ReplyStreamed:
    """New text of side ``side``'s reply; ``text`` is the whole reply so far."""

    side: int
    text: str
    tokens: int
    """Tokens generated so far."""


@dataclass(frozen=True)
class ReplyFinished:
    """Side ``side``'s reply ended: at its end-of-turn token, the token limit, or a stop."""

    side: int
    text: str
    """The reply, cut at the end-of-turn marker and stripped (what the history keeps)."""
    tokens: int
    seconds: float
    """From the request to the last token."""
    first_token_seconds: float | None
    """From the request to the first token (``None`` when none came)."""
    stopped: bool
    """Ended by a stop request."""

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second after the first token (the decoding speed)."""
        if self.first_token_seconds is None or self.tokens < 2:
            return 0.0
        span = self.seconds - self.first_token_seconds
        return (self.tokens - 1) / span if span > 0 else 0.0


ChatEvent = ChatPhase | ReplyStreamed | ReplyFinished
"""Everything :func:`stream_turn` reports."""


# --- prompts -----------------------------------------------------------------------------


def render_options_for(refs: Sequence[ModelRef], fallback: DataConfig | None = None) -> RenderOptions:
    """How training rendered prompts: the data options of the first run among ``refs`` (both
    sides of a comparison get the same prompt), else those of ``fallback`` (the app's config).
    """
    options = run_render_options(refs)
    if options is not None:
        return options
    return RenderOptions.from_config(fallback) if fallback is not None else RenderOptions()


def conversation(history: Sequence[dict[str, str]], system: str | None = None) -> list[dict[str, str]]:
    """The messages of a turn: ``system`` (when the user gave one) and the history."""
    turns = [dict(m) for m in history]
    if system:
        turns.insert(0, {"role": "system", "content": system})
    return turns


# --- streaming ---------------------------------------------------------------------------


def stream_reply(generator: TextGenerator, prompt: str, settings: GenerationSettings,
                 on_text: Callable[[str, int], None], stop: threading.Event | None = None,
                 side: int = 0) -> ReplyFinished:
    """Generate one reply to the rendered ``prompt``, calling ``on_text(text so far, tokens)``
    as words are decoded; returns the finished reply, timed from this call.

    Decoding is the review's (:meth:`TextGenerator.generate`): the same generation config and
    end-of-turn tokens, so a greedy reply equals the non-streamed one.
    """
    import torch
    from transformers import TextStreamer

    settings.check()
    started = time.perf_counter()
    tok = generator.tokenizer

    class Streamer(TextStreamer):
        """transformers' streamer, counting tokens and handing finished words on."""

        def __init__(self) -> None:
            super().__init__(tok, skip_prompt=True, skip_special_tokens=True)
            self.text = ""
            self.tokens = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt:
                self.tokens += int(value.numel())
                if self.first is None:
                    self.first = time.perf_counter() - started
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                self.text += text
                on_text(self.text, self.tokens)

    enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
    enc = {k: v.to(generator.device) for k, v in enc.items()}
    config = generator.generation_config(settings)
    if not settings.greedy:
        torch.manual_seed(settings.seed)
    streamer = Streamer()
    with generator.active(), torch.inference_mode():
        generator.model.generate(**enc, generation_config=config, streamer=streamer,
                                 stopping_criteria=stop_criteria(stop))
    return ReplyFinished(side, cut_at_end_of_turn(streamer.text), streamer.tokens,
                         time.perf_counter() - started, streamer.first,
                         bool(stop and stop.is_set()))


@dataclass
class TurnRequest:
    """One user message to every side: what :func:`stream_turn` needs."""

    refs: list[ModelRef]
    """The sides, in order (one, or two side by side)."""
    histories: list[list[dict[str, str]]]
    """Each side's conversation so far, ending with the new user message."""
    settings: GenerationSettings
    system: str | None = None
    """A system prompt of the user's; ``None`` renders as training did."""
    data: DataConfig | None = None
    """The app's data options, used when no side is a run."""
    stop: threading.Event | None = None


class ChatModels:
    """The loaded sides, kept between turns: asking for models already loaded (a base and its
    fine-tune, in any order or alone) loads nothing; other models replace them."""

    def __init__(self, device: str | None = None,
                 loader: Callable[..., list[TextGenerator]] = load_generators) -> None:
        self.device = device
        self._loader = loader
        self._loaded: dict[ModelRef, TextGenerator] = {}
        self._lock = threading.Lock()

    def loaded(self, refs: Sequence[ModelRef]) -> bool:
        """Whether every ref is loaded already."""
        return all(ref in self._loaded for ref in refs)

    def get(self, refs: Sequence[ModelRef], on_status: Callable[[str], None] | None = None,
            ) -> list[TextGenerator]:
        """A generator per ref, loading them (together, sharing a base) if any is missing."""
        with self._lock:
            if not self.loaded(refs):
                self._loaded = {}  # drop the old models first: two 7B models may not fit
                wanted = list(dict.fromkeys(refs))
                self._loaded = dict(zip(wanted, self._loader(wanted, self.device, on_status)))
            return [self._loaded[ref] for ref in refs]


def stream_turn(request: TurnRequest, models: ChatModels,
                sink: Callable[[ChatEvent], None]) -> list[ReplyFinished]:
    """Answer the new user message on every side, one side after the other (they may share
    one model), streaming each reply to ``sink``; returns the finished replies.

    Raises :class:`core.models.ModelError` or :class:`core.generate.GenerationError` (with the
    fix) when a model cannot load or a setting is invalid, and
    :class:`core.data.problems.DataError` when the chat template rejects the conversation.
    """
    request.settings.check()
    if not models.loaded(request.refs):
        sink(ChatPhase("Loading " + " and ".join(dict.fromkeys(r.label or r.spec for r in request.refs))
                       + "…"))
    generators = models.get(request.refs, lambda text: sink(ChatPhase(text)))
    options = render_options_for(request.refs, request.data)
    replies = []
    for side, (generator, history) in enumerate(zip(generators, request.histories)):
        if request.stop is not None and request.stop.is_set():
            break
        label = request.refs[side].label or request.refs[side].spec
        sink(ChatPhase(f"Reading the prompt ({label})…"))
        prompt = render_generation_prompt(generator.tokenizer,
                                          conversation(history, request.system), options)
        reply = stream_reply(generator, prompt, request.settings,
                             lambda text, tokens, s=side: sink(ReplyStreamed(s, text, tokens)),
                             request.stop, side)
        sink(reply)
        replies.append(reply)
    return replies


# --- findings to review ------------------------------------------------------------------


def add_to_review(review: ReviewSet | None, workspace: str | Path, a: ModelRef, b: ModelRef,
                  messages: Sequence[dict[str, str]], answer_a: str, answer_b: str,
                  settings: GenerationSettings, seed: int = 0) -> ReviewSet:
    """Put a chat finding (the conversation up to the last user message, and both answers)
    into ``review``, or into a new set when it is ``None`` or compares other models: under
    B's run when B is a run (where the review screen looks first), else the workspace.

    Returns the set that holds it, ready to judge on the review screen. Raises
    :class:`core.review.ReviewError` or ``OSError`` when it cannot be written.
    """
    prompt = PromptItem(messages=[dict(m) for m in messages])
    same = review is not None and review.meta.get("a", {}).get("spec") == a.spec \
        and review.meta.get("b", {}).get("spec") == b.spec
    if review is not None and same:
        review.add_prompt(prompt, answer_a, answer_b)
        return review
    root = run_dir_of(b) or run_dir_of(a) or Path(workspace)
    name = default_set_name(root, f"chat {a.label or a.spec}", b.label or b.spec)
    review = ReviewSet.create(root, name, a.to_dict(), b.to_dict(), [prompt], CHAT_PROMPTS,
                              settings.to_dict(), seed)
    review.append_items([review.make_item(0, answer_a, answer_b)])
    review.mark_complete()
    return review


# --- saved conversations -----------------------------------------------------------------


class ChatFileError(ValueError):
    """A saved conversation that cannot be read; the message names the file and the fix."""


def new_chat_path(workspace: str | Path) -> Path:
    """A new conversation's file, ``<workspace>/chats/20250303-101500.json`` (unique)."""
    folder = Path(workspace) / CHATS_DIR
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    path, n = folder / f"{stamp}.json", 2
    while path.exists():
        path, n = folder / f"{stamp}-{n}.json", n + 1
    return path


def save_chat(path: Path, conversation_data: dict[str, Any]) -> None:
    """Write a conversation (models, system prompt, settings, each side's turns) atomically:
    a crash leaves the previous version, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"version": CHAT_FORMAT, **conversation_data}, indent=1),
                   encoding="utf-8")
    os.replace(tmp, path)


def load_chat(path: Path) -> dict[str, Any]:
    """A saved conversation, checked; raises :class:`ChatFileError` saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChatFileError(f"{path} cannot be read: {exc}. Fix: open another conversation, "
                            "or delete the file.") from None
    turns = data.get("turns") if isinstance(data, dict) else None
    histories = data.get("histories") if isinstance(data, dict) else None
    if not (isinstance(turns, list) and isinstance(histories, list) and len(turns) == 2
            and len(histories) == 2):
        raise ChatFileError(f"{path} is not a tunetop conversation (no turns and histories "
                            "for two sides). Fix: open another one.")
    return data


def list_chats(workspace: str | Path) -> list[tuple[Path, str]]:
    """Saved conversations of the workspace, newest first: ``(file, first message)``."""
    out = []
    for path in sorted((Path(workspace) / CHATS_DIR).glob("*.json"), reverse=True):
        try:
            first = next((m["content"] for m in load_chat(path)["histories"][0]
                          if m.get("role") == "user"), "")
        except (ChatFileError, KeyError, TypeError):
            continue  # a damaged file is not offered
        out.append((path, first))
    return out
