"""Scoring functions on hand-made predictions."""

from __future__ import annotations

import pytest

from core.metrics import exact_match, field_accuracy, parse_json_object, score

REF = '{"category": "billing", "priority": "high", "product": "Router X2", "order_id": "ORD-48213"}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": null}\n ', {"a": None}),
        ("{}", {}),
        ('{"a": 1} {"b": 2}', None),
        ('Sure! {"a": 1}', None),
        ('{"a": 1', None),
        ("[1, 2]", None),
        ('"text"', None),
        ("42", None),
        ("", None),
        ("null", None),
    ],
)
def test_parse_json_object(text: str, expected: dict | None) -> None:
    assert parse_json_object(text) == expected


def test_exact_match_json_ignores_key_order_and_spacing() -> None:
    reordered = '{"order_id":"ORD-48213","product":"Router X2","priority":"high","category":"billing"}'
    assert exact_match(reordered, REF)
    assert exact_match(f"  {REF}\n", REF)


def test_exact_match_json_rejects_wrong_values_and_invalid_output() -> None:
    assert not exact_match(REF.replace("high", "urgent"), REF)
    assert not exact_match(REF.replace('"ORD-48213"', "null"), REF)
    assert not exact_match(REF[:-1], REF)
    assert not exact_match(f"Answer: {REF}", REF)
    assert not exact_match('{"a": 1}', '{"a": true}')
    assert not exact_match('{"a": 1}', '{"a": 1, "b": 2}')


def test_exact_match_plain_text_compares_stripped_strings() -> None:
    assert exact_match("  Paris\n", "Paris")
    assert not exact_match("paris", "Paris")
    assert not exact_match('{"city": "Paris"}', "Paris")


def test_field_accuracy_counts_each_key() -> None:
    references = [REF, REF, '{"category": "other", "priority": "low", "product": "KettleOne", "order_id": null}']
    predictions = [
        REF,
        REF.replace("high", "low"),
        "not json at all",
    ]
    assert field_accuracy(predictions, references) == {
        "category": pytest.approx(2 / 3),
        "priority": pytest.approx(1 / 3),
        "product": pytest.approx(2 / 3),
        "order_id": pytest.approx(2 / 3),
    }


def test_field_accuracy_missing_key_is_wrong_and_text_references_are_skipped() -> None:
    result = field_accuracy(['{"a": 1}', "x"], ['{"a": 1, "b": null}', "x"])
    assert result == {"a": 1.0, "b": 0.0}
    assert field_accuracy(["x"], ["y"]) == {}


def test_score_summarises_rows() -> None:
    references = [REF, REF, REF, "plain answer"]
    predictions = [REF, REF.replace("billing", "refund"), "oops", "plain answer"]
    result = score(predictions, references)
    assert result["n"] == 4
    assert result["exact_match"] == pytest.approx(2 / 4)
    assert result["valid_json"] == pytest.approx(2 / 3)
    expected_ratio = (1 + len(REF.replace("billing", "refund")) / len(REF) + 4 / len(REF) + 1) / 4
    assert result["length_ratio"] == pytest.approx(expected_ratio)
    assert result["field_accuracy"]["category"] == pytest.approx(1 / 3)
    assert result["field_accuracy"]["product"] == pytest.approx(2 / 3)


def test_score_without_json_references_or_rows() -> None:
    assert score(["a"], ["a"])["valid_json"] is None
    empty = score([], [])
    assert empty["n"] == 0
    assert empty["exact_match"] is None


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="one prediction per reference"):
        score(["a"], [])
    with pytest.raises(ValueError):
        field_accuracy([], ["a"])
