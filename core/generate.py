"""Generation for blind review: model references, loading, and batched generation.

A review compares two models on the same prompts. Each side is a *model reference*:

- ``base``: the base model of the run on the other side (or a default the caller gives);
- a model reference understood by :func:`core.models.resolve_model_path` (hub id, local model
  directory, ``bundled:smollm2-135m-instruct``);
- a run directory: its ``final/`` output on the run's base model;
- a checkpoint directory (``<run>/checkpoints/checkpoint-N``) or any PEFT adapter directory.

Prompts are rendered with the same chat template the run trained with:
``tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)``
(the final assistant answer, when present, is the reference and is left out), then tokenized
with ``add_special_tokens=False`` exactly like training rows.

Batches are left-padded with an attention mask; transformers derives position ids from that
mask, so greedy outputs of a batch equal those of one prompt at a time (checked by
``tests/core/test_generate.py`` and ``bench/generation.py``). Sampling (temperature above 0) is
seeded per batch, so it repeats for the same batch size but not across batch sizes.

Two sides that share a base model load it once: adapters are attached by name to one
``PeftModel`` and the plain base side runs with adapters disabled.

torch, transformers and peft are imported inside the functions that need them, so the UI can
import this module at start-up.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import ModelConfig, RunConfig
from core.rundir import CHECKPOINTS_DIR, COMPLETE_MARKER, CONFIG_FILE, FINAL_DIR, latest_checkpoint
from core.runs import format_duration

DEFAULT_BATCH_SIZE = 8
"""Prompts generated together; 8 keeps a 7B model's KV cache small on one GPU."""
BASE = "base"
"""The reference that means "the base model of the run on the other side"."""
END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<|return|>",
)
"""Chat templates' end-of-turn tokens: generation stops at any the tokenizer knows."""


class GenerationError(ValueError):
    """A reference or setting that cannot be used; the message says what to do."""


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSettings:
    """How outputs are generated; stored in a review set's ``meta.json``."""

    max_new_tokens: int = 256
    """Longest answer, in tokens; generation also stops at the end-of-turn token."""
    temperature: float = 0.0
    """0 decodes greedily (deterministic); above 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass, used only when sampling."""
    seed: int = 0
    """Seed for sampling; batch ``k`` (0-based) uses ``seed + k``."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Prompts per forward pass. Greedy outputs do not depend on it."""

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature 0)."""
        return self.temperature == 0

    def problems(self) -> list[str]:
        """Every invalid setting, each with the fix; empty when valid."""
        out = []
        if self.max_new_tokens < 1:
            out.append("max_new_tokens must be at least 1. Fix: use 64-512.")
        if self.temperature < 0:
            out.append("temperature must not be negative. Fix: use 0 for greedy or 0.7 to sample.")
        if not 0 < self.top_p <= 1:
            out.append("top_p must be in (0, 1]. Fix: use 1.0, or 0.9 to trim unlikely tokens.")
        if self.batch_size < 1:
            out.append("batch_size must be at least 1. Fix: use 8, or 1 when memory is tight.")
        return out

    def check(self) -> None:
        """Raise :class:`GenerationError` listing every invalid setting."""
        problems = self.problems()
        if problems:
            raise GenerationError(" ".join(problems))

    def describe(self) -> str:
        """One line for progress output: ``greedy · max 256 new tokens · batch 8``."""
        mode = "greedy" if self.greedy else (
            f"temperature {self.temperature:g} · top_p {self.top_p:g} · seed {self.seed}")
        return f"{mode} · max {self.max_new_tokens} new tokens · batch {self.batch_size}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``meta.json``, with ``greedy`` spelled out."""
        return {**asdict(self), "greedy": self.greedy}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationSettings":
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


# --- model references ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """One side of a review: which weights to load, which adapter, which tokenizer."""

    spec: str
    """What the user gave: ``base``, a model reference, a run or checkpoint directory."""
    kind: str
    """``base`` (the base of a run), ``model`` (a plain model), ``run`` (its final output) or
    ``checkpoint``."""
    model: str
    """Model reference whose weights are loaded (the base for adapters, the directory for
    full fine-tunes)."""
    adapter: str | None = None
    """PEFT adapter directory put on top of ``model``, or ``None``."""
    tokenizer: str = ""
    """Model reference whose tokenizer (and chat template) is used; ``model`` when empty."""
    base_model: str = ""
    """The model the run started from (``model`` for plain references)."""
    label: str = ""
    """Short name for screens and reports, e.g. ``run lora-1 (final)``."""
    revision: str | None = None
    """Hub revision of the base, from the run's config."""
    trust_remote_code: bool = False
    """From the run's config: whether the model's own code may run."""
    allow_pickle_weights: bool = False
    """From the run's config: whether ``.bin`` weights may load."""

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` that loads ``model``."""
        return ModelConfig(name_or_path=self.model, revision=self.revision,
                           trust_remote_code=self.trust_remote_code,
                           allow_pickle_weights=self.allow_pickle_weights)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``meta.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelRef":
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def _run_config_near(path: Path) -> tuple[Path, RunConfig] | None:
    """The run directory and config owning ``path`` (a run, its ``final/`` or a checkpoint)."""
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / CONFIG_FILE).is_file():
            return candidate, RunConfig.load(candidate / CONFIG_FILE)
    return None


def _from_output(path: Path, kind: str, spec: str, label: str,
                 run_config: RunConfig | None) -> ModelRef:
    """A reference to a saved output: a PEFT adapter or a full model directory."""
    settings: dict[str, Any] = {}
    base = ""
    if run_config is not None:
        m = run_config.model
        base = m.name_or_path
        settings = {"revision": m.revision, "trust_remote_code": m.trust_remote_code,
                    "allow_pickle_weights": m.allow_pickle_weights}
    if (path / "adapter_config.json").is_file():
        if not base:
            try:
                adapter_cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise GenerationError(f"{path / 'adapter_config.json'} cannot be read: {exc}. "
                                      "Fix: point at an adapter saved by tunetop or PEFT.") from None
            base = adapter_cfg.get("base_model_name_or_path") or ""
        if not base:
            raise GenerationError(f"{path} is an adapter but names no base model. Fix: compare "
                                  "a run directory, whose config.yaml names the base.")
        return ModelRef(spec=spec, kind=kind, model=base, adapter=str(path), tokenizer=base,
                        base_model=base, label=label, **settings)
    if (path / "config.json").is_file():
        has_tokenizer = (path / "tokenizer_config.json").is_file()
        tokenizer = str(path) if has_tokenizer or not base else base
        return ModelRef(spec=spec, kind=kind, model=str(path), tokenizer=tokenizer,
                        base_model=base or str(path), label=label, **settings)
    raise GenerationError(f"{path} holds neither adapter_config.json nor config.json. Fix: "
                          "give a run directory, a complete checkpoint or a model directory.")


def resolve_ref(spec: str, base: str | None = None) -> ModelRef:
    """Turn what the user typed into a :class:`ModelRef`, reading only small files.

    ``base`` is the model that the reference ``base`` stands for. Raises
    :class:`GenerationError` for a run without output, a half-written checkpoint, or a
    directory that holds no model.
    """
    spec = spec.strip()
    if not spec:
        raise GenerationError("The model reference is empty. Fix: give base, a run directory, "
                              "a checkpoint directory or a model reference.")
    if spec == BASE:
        if not base:
            raise GenerationError(
                "'base' means the base model of the run on the other side, and neither side is "
                "a run. Fix: give the model itself, e.g. bundled:smollm2-135m-instruct.")
        return ModelRef(spec=spec, kind="base", model=base, tokenizer=base, base_model=base,
                        label=f"base {base}")
    path = Path(spec).expanduser()
    if not path.is_dir():
        return ModelRef(spec=spec, kind="model", model=spec, tokenizer=spec, base_model=spec,
                        label=spec)
    owner = _run_config_near(path)
    run_config = owner[1] if owner else None
    if owner is not None and path == owner[0]:
        final = path / FINAL_DIR
        if not final.is_dir():
            latest = latest_checkpoint(path)
            hint = f"compare its latest checkpoint, {latest}" if latest else "wait for it to finish"
            raise GenerationError(f"Run {path} has no final output yet. Fix: {hint}.")
        return _from_output(final, "run", spec, f"run {path.name} (final)", run_config)
    if path.parent.name == CHECKPOINTS_DIR:
        if not (path / COMPLETE_MARKER).is_file():
            raise GenerationError(f"Checkpoint {path} is incomplete (no {COMPLETE_MARKER} file); "
                                  "it was being written when the run stopped. Fix: pick an "
                                  "earlier checkpoint.")
        run_name = owner[0].name if owner else path.parent.parent.name
        return _from_output(path, "checkpoint", spec, f"run {run_name} {path.name}", run_config)
    if owner is not None and path.name == FINAL_DIR:
        return _from_output(path, "run", spec, f"run {owner[0].name} (final)", run_config)
    if (path / "adapter_config.json").is_file():
        return _from_output(path, "checkpoint", spec, f"adapter {path.name}", run_config)
    return ModelRef(spec=spec, kind="model", model=spec, tokenizer=spec, base_model=spec,
                    label=path.name)


def run_dir_of(ref: ModelRef) -> Path | None:
    """The run directory a reference belongs to (for a run or checkpoint), else ``None``."""
    if ref.kind not in ("run", "checkpoint"):
        return None
    owner = _run_config_near(Path(ref.adapter or ref.model))
    return owner[0] if owner else None


def run_render_options(refs: Sequence[ModelRef]) -> Any:
    """How training rendered prompts, from the first run among ``refs`` with a readable config:
    its ``data.chat_template`` and ``data.default_system_prompt`` (a
    :class:`core.data.template_probe.RenderOptions`); ``None`` when no side is such a run."""
    from core.data.template_probe import RenderOptions

    for ref in refs:
        run_dir = run_dir_of(ref)
        if run_dir is not None:
            try:
                return RenderOptions.from_config(RunConfig.load(run_dir / CONFIG_FILE).data)
            except Exception:  # an unreadable config: the runs screen reports it
                continue
    return None


def resolve_pair(spec_a: str, spec_b: str, default_base: str | None = None) -> tuple[ModelRef, ModelRef]:
    """Resolve both sides; ``base`` becomes the base of the run on the other side.

    When neither side is a run, ``base`` stands for ``default_base`` (the app's model).
    """
    resolved = {s: resolve_ref(s) for s in (spec_a, spec_b) if s.strip() != BASE}
    runs = [r for r in (resolved.get(spec_b), resolved.get(spec_a))
            if r is not None and r.kind in ("run", "checkpoint")]
    base = runs[0].base_model if runs else default_base
    a = resolved.get(spec_a) or resolve_ref(spec_a, base)
    b = resolved.get(spec_b) or resolve_ref(spec_b, base)
    return a, b


# --- prompts -----------------------------------------------------------------------------


def split_prompt(messages: Sequence[dict[str, str]]) -> tuple[list[dict[str, str]], str | None]:
    """``(prompt messages, reference answer)``: a final assistant turn becomes the reference."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[-1].get("role") == "assistant":
        return msgs[:-1], msgs[-1].get("content", "")
    return msgs, None


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text exactly as in training, ending with the assistant header."""
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)


def cut_at_end_of_turn(text: str, strip: bool = True) -> str:
    """The answer up to the first end-of-turn marker (some are not special tokens), stripped
    unless ``strip`` is off."""
    cut = len(text)
    for marker in END_OF_TURN_TOKENS:
        at = text.find(marker)
        if 0 <= at < cut:
            cut = at
    return text[:cut].strip() if strip else text[:cut]


# --- loading -----------------------------------------------------------------------------


class TextGenerator:
    """One side, ready to generate: a model (maybe shared), an adapter name, a tokenizer.

    When several sides share a base model, ``model`` is one ``PeftModel`` holding each side's
    adapter under its own name; ``adapter_name`` picks it, ``None`` disables them all.
    """

    def __init__(self, model: Any, tokenizer: Any, adapter_name: str | None, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.adapter_name = adapter_name
        self.device = device
        self.render_options: Any = None
        """How the prompts are rendered (:func:`run_render_options`: a run's template and
        system prompt, as in training); ``None``: the tokenizer's own template as it is."""
        self.eos_token_ids = _end_token_ids(model, tokenizer)

    def active(self) -> contextlib.AbstractContextManager:
        """Select this side's adapter (or none) on a shared model for one call."""
        if not hasattr(self.model, "peft_config"):
            return contextlib.nullcontext()
        if self.adapter_name is None:
            return self.model.disable_adapter()
        self.model.set_adapter(self.adapter_name)
        return contextlib.nullcontext()

    def generation_config(self, settings: GenerationSettings) -> Any:
        """The ``GenerationConfig`` for ``settings``: the model's own defaults (repetition
        penalty, top_k...) are not used, so the settings describe the decoding completely."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=not settings.greedy,
            temperature=settings.temperature if not settings.greedy else 1.0,
            top_p=settings.top_p if not settings.greedy else 1.0,
            top_k=0 if not settings.greedy else 50,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=getattr(self.model.generation_config, "bos_token_id", None),
        )

    def generate(self, conversations: Sequence[Sequence[dict[str, str]]],
                 settings: GenerationSettings, seed: int = 0,
                 stop: threading.Event | None = None,
                 on_token: Callable[[int], None] | None = None) -> list[str]:
        """Answers for one batch of prompt conversations (left padded, one forward per token).

        ``seed`` seeds sampling for this batch. ``stop`` ends generation at the next token.
        ``on_token(n)`` is called after the ``n``-th new token of the batch (for progress).
        Decoding follows :meth:`generation_config`.
        """
        return [answer for answer, _ in self.generate_with_ends(conversations, settings, seed, stop,
                                                                 on_token=on_token)]

    def render(self, conversation: Sequence[dict[str, str]]) -> str:
        """The prompt text of ``conversation``, ending with the assistant header."""
        if self.render_options is None:
            return render_prompt(self.tokenizer, conversation)
        from core.data.render import render_generation_prompt

        return render_generation_prompt(self.tokenizer, list(conversation), self.render_options)

    def generate_with_ends(self, conversations: Sequence[Sequence[dict[str, str]]],
                           settings: GenerationSettings, seed: int = 0,
                           stop: threading.Event | None = None,
                           strip: bool = True,
                           on_token: Callable[[int], None] | None = None,
                           ) -> list[tuple[str, bool]]:
        """:meth:`generate`, each answer with whether it ended (an end-of-turn token came
        before ``max_new_tokens`` ran out); ``strip`` off keeps the whitespace around it."""
        import torch

        tok = self.tokenizer
        texts = [self.render(c) for c in conversations]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        config = self.generation_config(settings)
        if not settings.greedy:
            torch.manual_seed(seed)
        with self.active(), torch.inference_mode():
            out = self.model.generate(**enc, generation_config=config,
                                      stopping_criteria=stop_criteria(stop, on_token))
        new = out[:, enc["input_ids"].shape[1]:]
        ends = set(self.eos_token_ids)
        return [(cut_at_end_of_turn(tok.decode(row, skip_special_tokens=True), strip),
                 any(int(t) in ends for t in row)) for row in new]

    def generate_all(self, conversations: Sequence[Sequence[dict[str, str]]],
                     settings: GenerationSettings, stop: threading.Event | None = None,
                     ) -> Iterator[tuple[int, str]]:
        """``(index, answer)`` for every conversation, batch by batch, in order."""
        size = settings.batch_size
        for k, start in enumerate(range(0, len(conversations), size)):
            if stop is not None and stop.is_set():
                return
            answers = self.generate(conversations[start:start + size], settings, settings.seed + k, stop)
            yield from enumerate(answers, start)

    def generate_one_by_one(self, conversations: Sequence[Sequence[dict[str, str]]],
                            settings: GenerationSettings) -> list[str]:
        """Answers one prompt at a time (no padding): the benchmark's baseline."""
        one = replace(settings, batch_size=1)
        return [answer for _, answer in self.generate_all(conversations, one)]


def stop_criteria(stop: threading.Event | None,
                  on_token: Callable[[int], None] | None = None) -> Any:
    """Stopping criteria that end every sequence once ``stop`` is set (checked once per new
    token), calling ``on_token(n)`` after the ``n``-th."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopRequested(StoppingCriteria):
        made = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            if on_token is not None:
                self.made += 1
                on_token(self.made)
            return torch.full((input_ids.shape[0],), bool(stop and stop.is_set()),
                              dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopRequested()])


def _end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids of the tokenizer and generation config, plus known end-of-turn tokens."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        ids.extend(value if isinstance(value, (list, tuple)) else [value])
    for marker in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tokenizer.convert_ids_to_tokens(tid) == marker:
            ids.append(tid)
    return list(dict.fromkeys(i for i in ids if isinstance(i, int) and i >= 0))


def load_generators(refs: Sequence[ModelRef], device: str | None = None,
                    on_status: Callable[[str], None] | None = None) -> list[TextGenerator]:
    """Load every side once; sides on the same base share its weights.

    Raises :class:`core.models.ModelError` (with the fix) when a model cannot load.
    """
    from core.machine import resolve_precision, training_device
    from core.models import load_model, load_tokenizer

    device = device or training_device()
    precision = resolve_precision("auto", device)
    say = on_status or (lambda text: None)
    groups: dict[tuple, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault((ref.model, ref.revision, ref.trust_remote_code), []).append(i)
    out: list[TextGenerator | None] = [None] * len(refs)
    for members in groups.values():
        first = refs[members[0]]
        say(f"Loading {first.model} on {device}…")
        # "lora" loads frozen weights: half precision on a GPU, fp32 on CPU (nothing trains).
        model = load_model(first.model_config(), "lora", precision, device)
        if not getattr(model, "hf_device_map", None):
            model = model.to(device)
        model.eval()
        names: dict[str, str] = {}
        for i in members:
            adapter = refs[i].adapter
            if adapter is None or adapter in names:
                continue
            name = f"side{len(names)}"
            say(f"Loading adapter {adapter}…")
            model = _attach_adapter(model, adapter, name)
            names[adapter] = name
        tokenizers: dict[str, Any] = {}
        for i in members:
            ref = refs[i]
            key = ref.tokenizer or ref.model
            if key not in tokenizers:
                tokenizer = load_tokenizer(key, ref.trust_remote_code, ref.revision)
                tokenizer.padding_side = "left"  # new tokens must follow each prompt directly
                tokenizers[key] = tokenizer
            adapter_name = names[ref.adapter] if ref.adapter else None
            out[i] = TextGenerator(model, tokenizers[key], adapter_name, device)
    return [g for g in out if g is not None]


def _attach_adapter(model: Any, adapter: str, name: str) -> Any:
    """Wrap ``model`` in a ``PeftModel`` with ``adapter`` under ``name``, or add it to one."""
    from peft import PeftModel

    try:
        if isinstance(model, PeftModel):
            model.load_adapter(adapter, adapter_name=name, is_trainable=False)
            return model
        return PeftModel.from_pretrained(model, adapter, adapter_name=name, is_trainable=False)
    except Exception as exc:  # peft raises several types for a wrong or truncated adapter
        from core.models import ModelError

        raise ModelError(f"Could not load the adapter in {adapter}: {type(exc).__name__}: {exc}. "
                         "Fix: check that it was trained on this base model.") from None


# --- review pairs ------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedPair:
    """Both answers to prompt ``index``."""

    index: int
    output_a: str
    output_b: str


@dataclass
class PairRequest:
    """Everything :func:`generate_pairs` needs; the UI passes it to an injectable generator."""

    a: ModelRef
    b: ModelRef
    conversations: list[list[dict[str, str]]]
    """Prompt messages (without the reference answer), in review order."""
    settings: GenerationSettings
    start: int = 0
    """First prompt to generate; earlier ones are already in the review set."""
    device: str | None = None
    """``cuda``/``cpu``; ``None`` picks the GPU when there is one."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set it to end generation at the next token."""


PairGenerator = Callable[[PairRequest, Callable[[str], None]], Iterator[GeneratedPair]]
"""``(request, on_status) -> pairs``: :func:`generate_pairs`, or a fake in tests."""


class _PairProgress:
    """Status lines while pairs generate: batch, side, tokens, prompts/s and time left.

    A batch can take a minute on a CPU, so the line moves with each token (at most 4 times a
    second), not only between batches.
    """

    def __init__(self, prompts: int, size: int, max_new_tokens: int,
                 say: Callable[[str], None]) -> None:
        self.prompts, self.size, self.max_new_tokens, self.say = prompts, size, max_new_tokens, say
        self.batches = -(-prompts // size)
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def side(self, name: str) -> Callable[[int], None]:
        """The ``on_token`` callback for side ``name`` of the current batch."""
        batch = self.done // self.size + 1
        head = f"Generating batch {batch}/{self.batches} · model {name}"
        self.say(f"{head}…{self._rate()}")
        self._last = time.monotonic()

        def on_token(n: int) -> None:
            now = time.monotonic()
            if now - self._last >= 0.25:
                self._last = now
                self.say(f"{head}: token {n}/{self.max_new_tokens}{self._rate()}")

        return on_token

    def batch_done(self, count: int) -> None:
        """Count ``count`` more prompts answered by both sides."""
        self.done += count

    def _rate(self) -> str:
        if not self.done:
            return ""
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        left = (self.prompts - self.done) / rate
        return f" · {rate:.2f} prompts/s · about {format_duration(left)} left"


def generate_pairs(request: PairRequest, on_status: Callable[[str], None] | None = None,
                   ) -> Iterator[GeneratedPair]:
    """Answers of A and B for each prompt from ``request.start`` on, one batch at a time.

    Both models are loaded first; each batch is generated by A, then by B, and its pairs are
    yielded together, so a reviewer can start after the first batch.
    """
    request.settings.check()
    say = on_status or (lambda text: None)
    gen_a, gen_b = load_generators([request.a, request.b], request.device, say)
    # both sides get the prompt the run trained on (its template and system prompt)
    gen_a.render_options = gen_b.render_options = run_render_options([request.a, request.b])
    todo = request.conversations[request.start:]
    size = request.settings.batch_size
    progress = _PairProgress(len(todo), size, request.settings.max_new_tokens, say)
    for offset in range(0, len(todo), size):
        if request.stop.is_set():
            return
        batch = todo[offset:offset + size]
        first = request.start + offset
        seed = request.settings.seed + first // size
        out_a = gen_a.generate(batch, request.settings, seed, request.stop,
                               progress.side("A"))
        out_b = gen_b.generate(batch, request.settings, seed, request.stop,
                               progress.side("B"))
        progress.batch_done(len(batch))
        if request.stop.is_set():
            return  # answers cut short by the stop request are not kept
        for i, (a, b) in enumerate(zip(out_a, out_b)):
            yield GeneratedPair(first + i, a, b)
