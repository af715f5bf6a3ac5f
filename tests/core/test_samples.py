"""The bundled support-ticket dataset: deterministic, well formed, labels grounded in the text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.samples import generate


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    """The committed train and held-out rows."""
    return {
        "train": _read(generate.SAMPLES_DIR / generate.TRAIN_FILE),
        "heldout": _read(generate.SAMPLES_DIR / generate.HELDOUT_FILE),
    }


def _all_rows(splits: dict[str, list[dict]]) -> list[dict]:
    return splits["train"] + splits["heldout"]


def test_generator_is_deterministic_and_matches_committed_files(tmp_path: Path) -> None:
    first = generate.main(out_dir=tmp_path / "a")
    second = generate.main(out_dir=tmp_path / "b")
    for a, b, name in zip(first, second, (generate.TRAIN_FILE, generate.HELDOUT_FILE)):
        assert a.name == b.name == name
        assert a.read_bytes() == b.read_bytes()
        committed = (generate.SAMPLES_DIR / name).read_bytes()
        assert a.read_bytes() == committed, f"{name} is stale: run python -m core.samples.generate"


def test_row_counts(splits: dict[str, list[dict]]) -> None:
    assert len(splits["train"]) == generate.TRAIN_ROWS == 640
    assert len(splits["heldout"]) == generate.HELDOUT_ROWS == 120


def test_rows_are_system_user_assistant_with_the_fixed_prompt(splits: dict[str, list[dict]]) -> None:
    for row in _all_rows(splits):
        assert list(row) == ["messages"]
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} for m in row["messages"])
        assert row["messages"][0]["content"] == generate.SYSTEM_PROMPT
        assert row["messages"][1]["content"].strip()


def test_answers_are_one_line_json_with_fixed_keys_and_allowed_values(splits: dict[str, list[dict]]) -> None:
    for row in _all_rows(splits):
        content = row["messages"][2]["content"]
        assert "\n" not in content
        answer = json.loads(content)
        assert list(answer) == list(generate.KEYS)
        assert answer["category"] in generate.CATEGORIES
        assert answer["priority"] in generate.PRIORITIES
        assert answer["product"] in generate.PRODUCTS
        order_id = answer["order_id"]
        assert order_id is None or generate.ORDER_ID_PATTERN.fullmatch(order_id)
        assert content == generate.answer_json(**answer)


def test_product_and_order_id_come_from_the_user_text(splits: dict[str, list[dict]]) -> None:
    for row in _all_rows(splits):
        text = row["messages"][1]["content"]
        answer = json.loads(row["messages"][2]["content"])
        assert answer["product"].lower() in text.lower()
        others = [p for p in generate.PRODUCTS if p != answer["product"]]
        assert not any(p.lower() in text.lower() for p in others), text
        ids_in_text = generate.ORDER_ID_PATTERN.findall(text)
        assert ids_in_text == ([] if answer["order_id"] is None else [answer["order_id"]]), text


def test_priority_cues_match_the_label(splits: dict[str, list[dict]]) -> None:
    cues = {p: [c.lower() for c in generate.URGENCY[p] if c] for p in generate.PRIORITIES}
    for row in _all_rows(splits):
        text = row["messages"][1]["content"].lower()
        priority = json.loads(row["messages"][2]["content"])["priority"]
        found = {p for p, phrases in cues.items() if any(c in text for c in phrases)}
        assert found <= {priority}, text
        if priority != "medium":
            assert found == {priority}, text


def test_no_duplicates_and_no_train_heldout_overlap(splits: dict[str, list[dict]]) -> None:
    train = [r["messages"][1]["content"] for r in splits["train"]]
    heldout = [r["messages"][1]["content"] for r in splits["heldout"]]
    assert len(set(train)) == len(train)
    assert len(set(heldout)) == len(heldout)
    assert not set(train) & set(heldout)


def test_labels_are_balanced_and_tickets_short(splits: dict[str, list[dict]]) -> None:
    for rows in splits.values():
        answers = [json.loads(r["messages"][2]["content"]) for r in rows]
        for key, values in (("category", generate.CATEGORIES), ("priority", generate.PRIORITIES)):
            counts = Counter(a[key] for a in answers)
            assert set(counts) == set(values)
            assert max(counts.values()) - min(counts.values()) <= 1
        nulls = sum(a["order_id"] is None for a in answers)
        assert 0.2 < nulls / len(answers) < 0.6
        words = [len(r["messages"][1]["content"].split()) for r in rows]
        assert all(10 <= w <= 90 for w in words)
        assert sum(20 <= w <= 70 for w in words) / len(words) >= 0.9


def test_heldout_generation_avoids_excluded_texts() -> None:
    train = generate.generate_rows(30, seed=1)
    texts = {r["messages"][1]["content"] for r in train}
    assert len(texts) == 30
    again = generate.generate_rows(30, seed=1, exclude=texts)
    assert not texts & {r["messages"][1]["content"] for r in again}
