"""Scores for model outputs against reference answers.

Pure functions on strings, usable without torch: the evaluation after training, the review
screen and the benchmarks all share them. A reference that is a JSON object (as in the
bundled support-ticket task) is compared as data, so key order and spacing do not matter;
any other reference is compared as stripped text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def parse_json_object(text: str) -> dict[str, Any] | None:
    """Parse ``text`` as exactly one JSON object, or return ``None``.

    Surrounding whitespace is allowed; anything else (prose around the object, two objects,
    a list, a string, invalid JSON) gives ``None``.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _canonical(value: Any) -> str:
    """JSON text that is equal for equal values regardless of key order (``true`` != ``1``)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def exact_match(prediction: str, reference: str) -> bool:
    """Whether ``prediction`` says the same as ``reference``.

    If the reference is a JSON object, the prediction must parse to an equal object (key
    order and whitespace ignored, types compared strictly). Otherwise the two stripped strings
    must be equal.
    """
    expected = parse_json_object(reference)
    if expected is None:
        return prediction.strip() == reference.strip()
    got = parse_json_object(prediction)
    return got is not None and _canonical(got) == _canonical(expected)


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    """Raise ``ValueError`` unless there is one prediction per reference."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references; "
            "pass one prediction per reference, in the same order."
        )


def field_accuracy(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Share of rows whose prediction has the reference's value, for each key.

    Keys come from the references that are JSON objects, in order of first appearance; each
    key is scored over the rows whose reference has it. A prediction that is not a JSON object,
    or lacks the key, counts as wrong. Rows whose reference is not a JSON object are skipped.
    """
    _check_lengths(predictions, references)
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    for prediction, reference in zip(predictions, references):
        expected = parse_json_object(reference)
        if expected is None:
            continue
        got = parse_json_object(prediction) or {}
        for key, value in expected.items():
            total[key] = total.get(key, 0) + 1
            hit = key in got and _canonical(got[key]) == _canonical(value)
            correct[key] = correct.get(key, 0) + hit
    return {key: correct[key] / total[key] for key in total}


def score(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Summary scores of ``predictions`` against ``references``.

    Returns a dict with:

    - ``n``: number of rows;
    - ``exact_match``: share of rows where :func:`exact_match` holds;
    - ``valid_json``: share of predictions that are one JSON object, over the rows whose
      reference is a JSON object (``None`` when no reference is);
    - ``length_ratio``: mean of prediction length over reference length, in characters after
      stripping (an empty reference counts as length 1), so 1.0 means "as long as expected";
    - ``field_accuracy``: :func:`field_accuracy` (empty when no reference is a JSON object).

    Rates are ``None`` when there are no rows.
    """
    _check_lengths(predictions, references)
    n = len(references)
    if n == 0:
        return {
            "n": 0,
            "exact_match": None,
            "valid_json": None,
            "length_ratio": None,
            "field_accuracy": {},
        }
    matches = sum(exact_match(p, r) for p, r in zip(predictions, references))
    json_rows = [p for p, r in zip(predictions, references) if parse_json_object(r) is not None]
    valid = sum(parse_json_object(p) is not None for p in json_rows)
    ratios = [len(p.strip()) / max(len(r.strip()), 1) for p, r in zip(predictions, references)]
    return {
        "n": n,
        "exact_match": matches / n,
        "valid_json": valid / len(json_rows) if json_rows else None,
        "length_ratio": sum(ratios) / n,
        "field_accuracy": field_accuracy(predictions, references),
    }
