"""Row shapes users already have: tool calls, content parts, history, turn weights,
preference rows, template control, text chunking, and the checks that read them.

Each shape is written to a real file (``dataset_fixtures``), loaded with no row lost, rendered
with the bundled tokenizer (whose template renders no tools: the fallback) and with a small
ChatML template that renders tools and reasoning itself, and inspected through the CLI.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_fixtures import (
    WEATHER_TOOL,
    alpaca_history_rows,
    glaive_rows,
    openai_tool_rows,
    preference_rows,
    v1_parts_rows,
    write_json,
    write_jsonl,
)

from core.config import RunConfig
from core.data import (
    DataError,
    Example,
    RenderOptions,
    dataset_stats,
    is_short_answer,
    load_examples,
    load_preferences,
    normalise_row,
    render_example,
    resolve_template,
    template_info,
    template_names,
    token_stats,
)
from core.rows import pack, unpack
from core.tokens import TokenCounter

TOOLS_CHATML = (
    "{%- if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools>"
    "<|im_end|>\n"
    "{% elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}"
    "<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'tool' %}<|im_start|>tool\n{{ message.content }}<|im_end|>\n"
    "{% elif message.role == 'assistant' %}<|im_start|>assistant\n"
    "{% if message.reasoning_content %}<think>{{ message.reasoning_content }}</think>"
    "{% endif %}{{ message.content }}"
    "{% for call in message.tool_calls or [] %}<tool_call>{{ call.function | tojson }}"
    "</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message.role != 'system' %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML that renders ``tools=``, ``tool_calls``, role ``tool`` and ``reasoning_content``
(as Qwen-style templates do), for the native path."""


@pytest.fixture(scope="module")
def tools_tokenizer(tokenizer):
    """A copy of the bundled tokenizer whose template renders tools and reasoning."""
    copied = copy.deepcopy(tokenizer)
    copied.chat_template = TOOLS_CHATML
    return copied


def trained(rendered) -> str:
    """The trained text of a rendered row."""
    return "".join(text for text, on in rendered.segments() if on)


def masked(rendered) -> str:
    """The masked text of a rendered row."""
    return "".join(text for text, on in rendered.segments() if not on)


def example(row: dict, fmt: str = "messages") -> Example:
    """A row normalised without problems."""
    result, problems = normalise_row(row, fmt, "f.jsonl", 1)
    assert result is not None and not problems, problems
    return result


SHAPES: dict[str, tuple[Callable[[Path], Path], str, int]] = {
    "openai tool calls": (lambda d: write_jsonl(d / "openai.jsonl", openai_tool_rows()),
                          "messages", 12),
    "sharegpt function_call": (lambda d: write_json(d / "glaive.json", glaive_rows()),
                               "sharegpt", 5),
    "llama-factory v1 parts": (lambda d: write_jsonl(d / "v1.jsonl", v1_parts_rows()),
                               "messages", 3),
    "alpaca history": (lambda d: write_json(d / "alpaca.json", alpaca_history_rows()),
                       "alpaca", 3),
}
"""Per shape: its writer, the format detected and its rows."""


@pytest.mark.parametrize("name", SHAPES)
def test_each_shape_loads_every_row_and_inspect_says_so(name, tmp_path, tokenizer, capsys,
                                                        monkeypatch):
    import core.models
    from tui.cli import main

    write, fmt, rows = SHAPES[name]
    path = write(tmp_path)
    loaded = load_examples(path)
    assert (loaded.format, loaded.total_rows, len(loaded.examples)) == (fmt, rows, rows)
    assert not loaded.problems
    monkeypatch.setattr(core.models, "load_tokenizer", lambda ref, *a: tokenizer)
    assert main(["inspect", str(path), "--max-length", "1024"]) == 0
    out = capsys.readouterr().out
    assert f"{rows} usable of {rows}; 0 dropped" in out
    assert "tools     fallback" in out and "truncated 0 rows" in out


def test_openai_tool_calls_are_trained_and_results_masked_in_the_fallback(tokenizer):
    row = example(openai_tool_rows()[2])  # two calls in parallel, two results
    calls = row.messages[1]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Oslo"}, {"city": "Baku"}]
    assert row.tools == [WEATHER_TOOL] and row.messages[2]["tool_call_id"] == "call_2a"
    info = template_info(tokenizer)
    assert (info.tools, info.reasoning) == ("fallback", "fallback")
    rendered = render_example(tokenizer, row, 2048)
    on, off = trained(rendered), masked(rendered)
    for city in ("Oslo", "Baku"):  # the calls are learned, as JSON inside <tool_call>
        assert f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n' \
               "</tool_call>" in on
    assert "Oslo has 12 degrees and Baku has 5 degrees.<|im_end|>" in on
    # the results (one user turn of <tool_response> blocks) and the tools list are not
    assert "<tool_response>" in off and '"celsius": 12' in off and "<tool_response>" not in on
    assert off.count("<|im_start|>user") == 2
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in off
    assert "You are a helpful AI assistant named SmolLM" in off  # the template's, kept
    assert rendered.eos_trained and not rendered.notes


def test_a_template_that_renders_tools_gets_them_natively(tools_tokenizer):
    info = template_info(tools_tokenizer)
    assert (info.tools, info.reasoning, info.system_prompt) == ("native", "native", None)
    rendered = render_example(tools_tokenizer, example(openai_tool_rows()[2]), 2048)
    on, off = trained(rendered), masked(rendered)
    assert on.count("<tool_call>{") == 2 and '"arguments": {"city": "Baku"}' in on
    assert on.startswith("<tool_call>") and "Oslo has 12 degrees" in on
    assert "<|im_start|>tool\n" in off and "<|im_start|>tool" not in on
    assert "# Tools\n<tools>\n" in off and "<tool_response>" not in off + on


def test_sharegpt_function_calls_keep_the_tools_column(tokenizer, tools_tokenizer):
    rows = glaive_rows()
    first = example(rows[0], "sharegpt")
    assert first.tools[0]["function"]["name"] == "convert_currency"
    assert first.messages[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "convert_currency",
                                          "arguments": {"amount": 100, "to": "EUR"}}}]}
    assert first.messages[2]["role"] == "tool"
    assert example(rows[-1], "sharegpt").tools is None  # "[]": no tools
    for tok, call in ((tokenizer, '<tool_call>\n{"name": "convert_currency"'),
                      (tools_tokenizer, '<tool_call>{"name": "convert_currency"')):
        rendered = render_example(tok, first, 2048)
        assert call in trained(rendered) and '"result": 50.0' in masked(rendered)
        assert '"description": "Convert money."' in masked(rendered)


def test_v1_content_parts_reasoning_and_loss_weights(tokenizer, tools_tokenizer):
    thinking, weighted, calling = (example(r) for r in v1_parts_rows())
    assert thinking.messages[2] == {"role": "assistant", "content": "It is 144.",
                                    "reasoning_content": "12*12 = 144."}
    assert "<think>\n12*12 = 144.\n</think>\n\nIt is 144." in trained(
        render_example(tokenizer, thinking, 1024))
    assert "<think>12*12 = 144.</think>It is 144." in trained(
        render_example(tools_tokenizer, thinking, 1024))
    # loss_weight 0 masks that answer, even when every other token is trained
    assert weighted.messages[1]["train"] is False
    for only_answers in (True, False):
        rendered = render_example(tokenizer, weighted, 1024, only_answers)
        assert "The sun is cold." in masked(rendered) and "Water is wet." in trained(rendered)
        assert ("Say something wrong." in trained(rendered)) is not only_answers
    assert calling.messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert calling.tools == [WEATHER_TOOL] and calling.messages[2]["role"] == "tool"


def test_sharegpt_turns_of_weight_0_are_masked():
    row = {"conversations": [{"from": "human", "value": "Hi", "weight": None},
                             {"from": "gpt", "value": "Bad answer.", "weight": 0},
                             {"from": "human", "value": "Again", "weight": None},
                             {"from": "gpt", "value": "Good answer.", "weight": 1}]}
    normalised = example(row, "sharegpt")
    assert [m.get("train", True) for m in normalised.messages] == [True, False, True, True]
    assert normalised.answers() == ["Good answer."]
    all_masked = {"conversations": [{"from": "human", "value": "Hi"},
                                    {"from": "gpt", "value": "Bad.", "weight": 0.0}]}
    kept, problems = normalise_row(all_masked, "sharegpt")
    assert kept is not None and "nothing in this row is trained" in problems[0].message
    odd, problems = normalise_row({"conversations": [{"from": "human", "value": "Hi"},
                                                     {"from": "gpt", "value": "Yo.",
                                                      "weight": "heavy"}]}, "sharegpt")
    assert odd is None and "weight must be 0 (masked) or 1" in problems[0].message


def test_alpaca_history_becomes_earlier_turns_and_is_trained(tokenizer):
    row = example(alpaca_history_rows()[0], "alpaca")
    assert [(m["role"], m["content"]) for m in row.messages] == [
        ("system", "Answer with one city."), ("user", "What is the capital of France?"),
        ("assistant", "Paris."), ("user", "And of Spain?"), ("assistant", "Madrid."),
        ("user", "And the capital of Italy?"), ("assistant", "Rome is.")]
    on = trained(render_example(tokenizer, row, 1024))
    assert all(answer in on for answer in ("Paris.", "Madrid.", "Rome is."))
    broken, problems = normalise_row({"instruction": "a", "output": "b c",
                                      "history": [["only a question"]]}, "alpaca")
    assert broken is None and "not a [prompt, answer] pair" in problems[0].message


def test_media_is_refused_with_the_reason(tmp_path):
    path = write_jsonl(tmp_path / "mm.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.png"},
                                                   {"type": "text", "text": "What is it?"}]},
                      {"role": "assistant", "content": "A cat."}]},
        {"instruction": "Describe.", "output": "A dog.", "images": ["dog.png"]},
        {"messages": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello there."}]}])
    loaded = load_examples(path)
    assert (len(loaded.examples), loaded.dropped) == (1, 2)
    assert "non-text content (image)" in loaded.problems[0].message
    assert "Remove the media parts" in loaded.problems[0].fix


def test_preference_data_is_recognised_refused_for_sft_and_read_typed(tmp_path, capsys):
    from tui.cli import main

    path = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    with pytest.raises(DataError) as info:
        load_examples(path)
    message = str(info.value)
    assert "is a preference dataset (preference: 3 of first 3 rows" in message
    assert "set data.format: chosen" in message and "objective: dpo" in message
    assert main(["inspect", str(path)]) == 1
    assert "preference dataset" in capsys.readouterr().err
    result = load_preferences(path)
    assert (result.total_rows, result.dropped) == (3, 0)
    explicit, turns, implicit = result.preferences
    assert explicit.prompt == [{"role": "user", "content": "Name a colour."}]
    assert explicit.chosen == [{"role": "assistant", "content": "Blue is a colour."}]
    assert turns.rejected == [{"role": "assistant", "content": "No idea."}]
    assert implicit.prompt == [{"role": "user", "content": "Hi!"}]  # their shared start
    assert implicit.rejected == [{"role": "assistant", "content": "Go away."}]
    chosen = load_examples(path, format="chosen")
    assert [m["content"] for m in chosen.examples[2].messages] == ["Hi!", "Hello! How can I help?"]
    assert main(["inspect", str(path), "--format", "chosen"]) == 0


def test_text_chunking_trains_long_text_as_chunks(tokenizer):
    text = Example(1, text=" ".join(f"word{i}" for i in range(400)))
    cut = render_example(tokenizer, text, 128)
    whole = render_example(tokenizer, text, 128, options=RenderOptions(text_chunking=True))
    assert cut.truncated and not whole.truncated and whole.chunked
    rows = whole.to_training_rows()
    assert all(len(r["input_ids"]) <= 128 for r in rows) and len(rows) == -(-whole.full_tokens // 128)
    assert [t for r in rows for t in r["input_ids"]] == whole.input_ids
    stats = token_stats([whole])
    assert (stats.rows, stats.truncated, stats.max) == (len(rows), 0, 128)
    chat = render_example(tokenizer, example(openai_tool_rows()[0]), 64,
                          options=RenderOptions(text_chunking=True))
    assert chat.truncated and not chat.chunked  # chunking is for text rows only


def test_chat_template_by_name_or_file(tokenizer, tmp_path):
    assert {"chatml", "llama3", "qwen2_5"} <= set(template_names())
    row = example({"messages": [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello there."}]})
    chatml = RenderOptions(chat_template="chatml")
    info = template_info(tokenizer, chatml)
    assert (info.name, info.system_prompt) == ("chatml", None)  # ChatML adds no system turn
    assert render_example(tokenizer, row, 256, options=chatml).text.startswith("<|im_start|>user")
    file = tmp_path / "plain.jinja"
    file.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}<|im_end|>"
                    "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")
    rendered = render_example(tokenizer, row, 256, options=RenderOptions(chat_template=str(file)))
    assert rendered.text == "[user] Hi<|im_end|>[assistant] Hello there.<|im_end|>"
    assert trained(rendered).lstrip() == "Hello there.<|im_end|>"  # " Hello" is one token
    with pytest.raises(DataError, match="not a template name"):
        resolve_template("chatlm")
    config = RunConfig()
    config.data.chat_template = "chatlm"
    problems = config.validate()
    assert [p.field for p in problems] == ["data.chat_template"] and "chatml" in problems[0].fix


def test_default_system_prompt_keeps_replaces_or_removes_the_templates(tokenizer):
    row = example({"messages": [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello there."}]})
    smollm = "You are a helpful AI assistant named SmolLM"
    own = render_example(tokenizer, row, 256)
    assert smollm in own.text and smollm in template_info(tokenizer).system_prompt
    mine = RenderOptions(default_system_prompt="Answer briefly.")
    assert "<|im_start|>system\nAnswer briefly.<|im_end|>" in render_example(
        tokenizer, row, 256, options=mine).text
    assert template_info(tokenizer, mine).system_from == "data.default_system_prompt"
    none = RenderOptions(default_system_prompt="")
    assert smollm not in render_example(tokenizer, row, 256, options=none).text
    assert template_info(tokenizer, none).system_prompt is None
    with_system = example({"messages": [{"role": "system", "content": "Be terse."},
                                        {"role": "user", "content": "Hi"},
                                        {"role": "assistant", "content": "Hello there."}]})
    assert "Answer briefly" not in render_example(tokenizer, with_system, 256, options=mine).text


def test_token_counts_follow_the_rendering(tokenizer, tools_tokenizer):
    rows = [example(r) for r in openai_tool_rows(3)] + [example(v1_parts_rows()[0])]
    for tok in (tokenizer, tools_tokenizer):
        for options in (RenderOptions(), RenderOptions(default_system_prompt="Short.")):
            counts = TokenCounter(tok, options).count(rows)
            assert counts == [render_example(tok, r, 4096, options=options).full_tokens
                              for r in rows]


def test_short_answers_count_characters_in_scripts_without_spaces():
    assert is_short_answer("好") and is_short_answer("はい") and is_short_answer("Yes")
    assert not is_short_answer("我今天不能去学校") and not is_short_answer("Yes it is")
    rows = [example({"messages": [{"role": "user", "content": f"问题 {i}"},
                                  {"role": "assistant", "content": answer}]})
            for i, answer in enumerate(["北京是中国的首都。", "东京是日本的首都。", "好"])]
    for i, row in enumerate(rows):
        row.line = i + 1
    assert dataset_stats(rows).short_answers == 1


def test_unfilled_placeholders_are_findings_with_a_fix():
    rows = [example({"messages": [{"role": "user", "content": "Who are you?"},
                                  {"role": "assistant", "content": answer}]})
            for answer in ["I am {{name}}, an AI assistant developed by {{author}}.",
                           "Hello! I am <PLACEHOLDER>, here to help.",
                           "I am Tunebot, trained by the tunetop team."]]
    for i, row in enumerate(rows):
        row.line = i + 1
    stats = dataset_stats(rows)
    found = [p for p in stats.findings if p.field == "placeholder"]
    assert stats.placeholders == 2 and [p.line for p in found] == [1, 2]
    assert "'{{name}}'" in found[0].message and "Replace {{name}}" in found[0].fix


def test_packed_rows_keep_tools_calls_reasoning_and_weights():
    rows = [example(r) for r in openai_tool_rows(3) + v1_parts_rows()]
    for row in rows:
        packed = pack(row)
        assert unpack(row.line, packed) == row
        json.dumps(packed)  # strings and tuples only: cheap to pickle, untracked by the GC
    plain = example({"messages": [{"role": "user", "content": "q"},
                                  {"role": "assistant", "content": "a"}]})
    assert pack(plain) == (("user", "q"), ("assistant", "a"))
