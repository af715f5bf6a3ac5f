"""Generation for review on tiny real models: the training chat template, batched greedy
equal to one at a time, seeded sampling, stopping, and a real run's adapter against its base.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from core.config import RunConfig
from core.generate import (
    GenerationSettings,
    PairRequest,
    TextGenerator,
    generate_pairs,
    load_generators,
    render_prompt,
    resolve_pair,
    resolve_ref,
    split_prompt,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine OpenMP threads spin-wait on each other
    (a 4x slowdown measured); restored after this module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def untied_model_dir(tmp_path_factory, bundled_dir):
    """A 2-layer Llama with untied embeddings: unlike the tied one, its greedy answers are
    not just the prompt's last token repeated, so comparisons mean something."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-untied")
    tokenizer = AutoTokenizer.from_pretrained(bundled_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def conversations():
    """Seven held-out prompts of different lengths (so batches are padded)."""
    from core.data import load_examples

    examples = load_examples("sample:support-tickets-heldout").examples[:7]
    return [split_prompt(e.messages)[0] for e in examples]


@pytest.fixture(scope="module")
def generator(untied_model_dir) -> TextGenerator:
    (gen,) = load_generators([resolve_ref(str(untied_model_dir))], device="cpu")
    return gen


@pytest.fixture(scope="module")
def trained_run(untied_model_dir, tmp_path_factory):
    """A real LoRA run of 3 steps on the tiny model: a run directory with final/."""
    from helpers import sample_rows
    from core.engine import Engine

    data = sample_rows(tmp_path_factory.mktemp("data") / "rows.jsonl", 24)
    cfg = RunConfig(run_name="tiny-lora")
    cfg.model.name_or_path = str(untied_model_dir)
    cfg.data.path = str(data)
    cfg.data.max_length = 192
    cfg.optim.precision = "fp32"
    cfg.optim.learning_rate = 5e-3
    cfg.optim.max_steps = 3
    cfg.optim.per_device_train_batch_size = 8
    cfg.eval.eval_steps = cfg.eval.save_steps = 3
    cfg.eval.general_sample = 0  # general drift has its own tests
    engine = Engine(cfg, None, workspace=tmp_path_factory.mktemp("runs"))
    engine.start()
    assert engine.join(timeout=600)
    assert (engine.run_dir / "final" / "adapter_config.json").is_file(), engine.final_event
    return engine.run_dir


def test_prompt_is_the_training_template_up_to_the_answer(generator, conversations):
    from core.data import Example, render_example

    tok = generator.tokenizer
    full = [*conversations[0], {"role": "assistant", "content": '{"category": "billing"}'}]
    prompt_msgs, reference = split_prompt(full)
    assert prompt_msgs == conversations[0] and reference == '{"category": "billing"}'
    prompt = render_prompt(tok, prompt_msgs)
    trained = render_example(tok, Example(line=1, messages=full), 512).text
    assert trained.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")
    assert trained[len(prompt):].startswith('{"category": "billing"}')
    assert tok.padding_side == "left"


def test_batched_greedy_equals_one_at_a_time(generator, conversations):
    settings = GenerationSettings(max_new_tokens=12, batch_size=4)
    batched = list(generator.generate_all(conversations, settings))
    assert [i for i, _ in batched] == list(range(7))
    one_by_one = generator.generate_one_by_one(conversations, settings)
    assert [text for _, text in batched] == one_by_one
    assert len(set(one_by_one)) > 1 and all(one_by_one)


def test_sampling_repeats_for_the_same_seed(generator, conversations):
    settings = GenerationSettings(max_new_tokens=8, temperature=0.9, top_p=0.9, seed=5, batch_size=4)
    first = [t for _, t in generator.generate_all(conversations[:4], settings)]
    again = [t for _, t in generator.generate_all(conversations[:4], settings)]
    other = [t for _, t in generator.generate_all(conversations[:4], replace(settings, seed=6))]
    assert first == again and first != other
    assert not settings.greedy and settings.to_dict()["greedy"] is False


def test_a_stop_request_ends_generation(generator, conversations):
    stop = threading.Event()
    stop.set()
    settings = GenerationSettings(max_new_tokens=50, batch_size=2)
    assert list(generator.generate_all(conversations, settings, stop)) == []
    stopped = generator.generate(conversations[:2], settings, stop=stop)  # after one token
    full = generator.generate(conversations[:2], settings)
    assert all(len(s) < len(f) for s, f in zip(stopped, full))


def test_settings_are_validated():
    assert GenerationSettings().problems() == []
    bad = GenerationSettings(max_new_tokens=0, temperature=-1, top_p=0, batch_size=0)
    assert len(bad.problems()) == 4


def test_without_a_visible_gpu_generation_loads_fp32_weights_on_cpu(untied_model_dir, monkeypatch):
    """The device is core.machine's; ``auto`` is bf16 there on an AVX-512 CPU (training
    autocasts), but frozen weights on CPU stay fp32, where half-precision matmuls are slow."""
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    said: list[str] = []
    (gen,) = load_generators([resolve_ref(str(untied_model_dir))], on_status=said.append)
    assert gen.device == "cpu"
    assert {p.dtype for p in gen.model.parameters()} == {torch.float32}
    assert said == [f"Loading {untied_model_dir} on cpu…"]


def test_run_adapter_against_its_base_shares_one_model(trained_run, untied_model_dir, conversations):
    a, b = resolve_pair("base", str(trained_run))
    assert a.model == b.model == str(untied_model_dir) and b.adapter == str(trained_run / "final")
    gen_a, gen_b = load_generators([a, b], device="cpu")
    assert gen_a.model is gen_b.model  # the base is loaded once; the adapter is switched off for A
    settings = GenerationSettings(max_new_tokens=10, batch_size=4)
    request = PairRequest(a=a, b=b, conversations=conversations[:5], settings=settings, device="cpu")
    statuses: list[str] = []
    pairs = list(generate_pairs(request, statuses.append))
    assert [p.index for p in pairs] == list(range(5))
    assert any("adapter" in s for s in statuses) and any("Generating batch 2/2 · model B" in s for s in statuses)
    assert any("prompts/s · about" in s for s in statuses)  # a rate and time left after batch 1
    # A (adapter disabled) answers exactly like the plain base model.
    (plain,) = load_generators([resolve_ref(str(untied_model_dir))], device="cpu")
    assert [p.output_a for p in pairs] == [t for _, t in plain.generate_all(conversations[:5], settings)]
    assert [p.output_a for p in pairs] != [p.output_b for p in pairs]
    # B with batches equals B one prompt at a time, through the adapter.
    assert [p.output_b for p in pairs] == gen_b.generate_one_by_one(conversations[:5], settings)
    made: list[int] = []  # the progress callback counts each new token of the batch
    gen_b.generate(conversations[:2], settings, on_token=made.append)
    assert made == list(range(1, len(made) + 1)) and 1 <= len(made) <= settings.max_new_tokens


def test_compare_command_end_to_end_on_a_real_run(trained_run, capsys):
    from tui.cli.compare import compare_main
    from core.review import ReviewSet

    code = compare_main(a="base", b=str(trained_run / "checkpoints" / "checkpoint-3"),
                        prompts="sample:support-tickets-heldout", limit=3, max_new_tokens=6,
                        batch_size=2, device="cpu", name="e2e")
    assert code == 0, capsys.readouterr().err
    review = ReviewSet.open(trained_run / "review" / "e2e")
    assert review.complete and len(review.items) == 3
    assert review.meta["b"]["kind"] == "checkpoint" and review.meta["a"]["kind"] == "base"


def test_compare_status_rewrites_one_line_on_a_terminal_and_writes_phases_to_a_pipe():
    import io

    from tui.cli.compare import StatusLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    said = ["Loading base on cpu…", "Generating batch 1/2 · model A…",
            "Generating batch 1/2 · model A: token 5/64", "Generating batch 1/2 · model A: token 9/64",
            "Generating batch 1/2 · model B…", "Generating batch 1/2 · model B: token 3/64"]
    pipe = io.StringIO()
    line = StatusLine(pipe)
    for text in said:
        line.show(text)
    assert pipe.getvalue().splitlines() == [said[0], said[1], said[4]]
    term = Terminal()
    line = StatusLine(term)
    for text in said:
        line.show(text)
    line.clear()
    assert "\n" not in term.getvalue() and term.getvalue().endswith("\r\x1b[K")
    assert term.getvalue().count("\r\x1b[K") == len(said) + 1
