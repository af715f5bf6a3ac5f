"""Chat on real small models: a streamed greedy reply equals the non-streamed one, a stop
keeps what was written, a run's system prompt reaches the prompt, and a base with its
fine-tune loads once."""

from __future__ import annotations

import threading

import pytest
from test_generate import one_thread, untied_model_dir  # noqa: F401  (fixtures)

from core.chat import (
    ChatModels,
    ChatPhase,
    ReplyFinished,
    ReplyStreamed,
    TurnRequest,
    add_to_review,
    render_options_for,
    stream_reply,
    stream_turn,
)
from core.config import RunConfig
from core.data.render import render_generation_prompt
from core.data.template_probe import RenderOptions
from core.generate import GenerationSettings, load_generators, render_prompt, resolve_pair, resolve_ref

QUESTION = [{"role": "user", "content": "My invoice shows a double charge, what now?"}]


@pytest.fixture(scope="module")
def generator(untied_model_dir):  # noqa: F811
    (gen,) = load_generators([resolve_ref(str(untied_model_dir))], device="cpu")
    return gen


@pytest.fixture(scope="module")
def adapter_run(untied_model_dir, tmp_path_factory):  # noqa: F811
    """A run directory whose final/ is a LoRA adapter with non-zero weights on the tiny
    model, and whose config gives rows a system prompt of its own."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path_factory.mktemp("runs") / "tiny-lora"
    run_dir.mkdir()
    cfg = RunConfig(run_name="tiny-lora")
    cfg.model.name_or_path = str(untied_model_dir)
    cfg.data.default_system_prompt = "You route support tickets."
    cfg.save(run_dir / "config.yaml")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(untied_model_dir)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    peft.save_pretrained(run_dir / "final")
    return run_dir


def test_streamed_greedy_reply_equals_the_non_streamed_one(generator):
    settings = GenerationSettings(max_new_tokens=24)
    seen: list[tuple[str, int]] = []
    prompt = render_prompt(generator.tokenizer, QUESTION)
    reply = stream_reply(generator, prompt, settings, lambda text, n: seen.append((text, n)))
    (expected,) = generator.generate([QUESTION], settings)
    assert reply.text == expected and expected
    assert len(seen) > 1, "the reply came in one piece, not streamed"
    assert all(later[0].startswith(earlier[0]) for earlier, later in zip(seen, seen[1:]))
    assert seen[-1][0].strip() == reply.text
    assert 1 <= reply.tokens <= 24 and not reply.stopped
    assert reply.first_token_seconds is not None and reply.first_token_seconds <= reply.seconds
    assert reply.tokens_per_second > 0


def test_stop_ends_the_reply_and_keeps_what_was_written(generator):
    settings = GenerationSettings(max_new_tokens=60)
    stop = threading.Event()
    prompt = render_prompt(generator.tokenizer, QUESTION)
    full = stream_reply(generator, prompt, settings, lambda text, n: None)

    def stop_after_a_few(text: str, tokens: int) -> None:
        if tokens >= 3:
            stop.set()

    stopped = stream_reply(generator, prompt, settings, stop_after_a_few, stop)
    assert stopped.stopped and 3 <= stopped.tokens < full.tokens
    assert stopped.text and full.text.startswith(stopped.text)


def test_the_run_system_prompt_and_template_apply_as_in_training(generator, adapter_run):
    a, b = resolve_pair("base", str(adapter_run))
    options = render_options_for([a, b])
    assert options.default_system_prompt == "You route support tickets."
    prompt = render_generation_prompt(generator.tokenizer, QUESTION, options)
    assert "You route support tickets." in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    plain = render_generation_prompt(generator.tokenizer, QUESTION, RenderOptions())
    assert plain == render_prompt(generator.tokenizer, QUESTION)  # "model": the template's own
    generator.render_options = options  # the review's generation renders as the chat does
    try:
        assert generator.render(QUESTION) == prompt
    finally:
        generator.render_options = None
    assert generator.render(QUESTION) == plain


def test_a_base_and_its_fine_tune_load_once_and_both_stream(adapter_run):
    loads: list[list[str]] = []

    def loader(refs, device, on_status):
        loads.append([r.spec for r in refs])
        return load_generators(refs, "cpu", on_status)

    models = ChatModels(loader=loader)
    a, b = resolve_pair("base", str(adapter_run))
    events: list = []
    history = [dict(m) for m in QUESTION]
    request = TurnRequest([a, b], [history, history], GenerationSettings(max_new_tokens=12))
    replies = stream_turn(request, models, events.append)
    assert len(loads) == 1 and len(replies) == 2
    assert isinstance(events[0], ChatPhase) and "Loading" in events[0].text
    streamed = {e.side for e in events if isinstance(e, ReplyStreamed)}
    assert streamed == {0, 1}
    assert [e.side for e in events if isinstance(e, ReplyFinished)] == [0, 1]
    assert replies[0].text != replies[1].text  # the adapter changes the answer
    # The fine-tune alone, or the base alone, is already loaded: no reload.
    stream_turn(TurnRequest([b], [history], GenerationSettings(max_new_tokens=4)), models,
                events.append)
    stream_turn(TurnRequest([a], [history], GenerationSettings(max_new_tokens=4)), models,
                events.append)
    assert len(loads) == 1


def test_a_stop_before_the_second_side_skips_it(adapter_run):
    models = ChatModels(device="cpu")
    a, b = resolve_pair("base", str(adapter_run))
    stop = threading.Event()

    def sink(event):
        if isinstance(event, ReplyFinished):
            stop.set()

    history = [dict(m) for m in QUESTION]
    replies = stream_turn(TurnRequest([a, b], [history, history],
                                      GenerationSettings(max_new_tokens=6), stop=stop),
                          models, sink)
    assert [r.side for r in replies] == [0]


def test_bundled_model_streams_the_greedy_answer(bundled_dir):
    (gen,) = load_generators([resolve_ref(str(bundled_dir))], device="cpu")
    settings = GenerationSettings(max_new_tokens=16)
    chunks: list[str] = []
    prompt = render_prompt(gen.tokenizer, QUESTION)
    reply = stream_reply(gen, prompt, settings, lambda text, n: chunks.append(text))
    assert reply.text == gen.generate([QUESTION], settings)[0]
    assert len(chunks) > 1 and reply.text


def test_chat_findings_go_to_one_review_set_per_pair_of_models(tmp_path):
    from core.generate import ModelRef
    from core.review import ReviewSet, find_review_sets

    base = ModelRef(spec="base", kind="base", model="m", label="base m")
    tuned = ModelRef(spec=str(tmp_path / "x"), kind="model", model="x", label="x")
    other = ModelRef(spec="y", kind="model", model="y", label="y")
    settings = GenerationSettings(max_new_tokens=32, batch_size=1)
    turn = [{"role": "user", "content": "double charge?"}]
    review = add_to_review(None, tmp_path, base, tuned, turn, "Sorry!", '{"category": "billing"}',
                           settings)
    second = [*turn, {"role": "assistant", "content": "Sorry!"}, {"role": "user", "content": "and?"}]
    again = add_to_review(review, tmp_path, base, tuned, second, "Call us.", '{"priority": "low"}',
                          settings)
    assert again is review and review.total == 2 and review.complete
    reopened = ReviewSet.open(review.path)
    assert reopened.total == 2 and sorted(reopened.items) == [0, 1] and reopened.complete
    assert reopened.items[1].messages == second
    assert {reopened.items[1].output_a, reopened.items[1].output_b} == {"Call us.", '{"priority": "low"}'}
    assert reopened.meta["prompts"] == {"source": "chat", "count": 2}
    assert reopened.meta["generation"]["max_new_tokens"] == 32
    other_set = add_to_review(review, tmp_path, base, other, turn, "a", "b", settings)
    assert other_set is not review and other_set.total == 1
    assert {info.total for info in find_review_sets(tmp_path)} == {2, 1}
