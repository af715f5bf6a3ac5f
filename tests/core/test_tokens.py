"""Batch token counts (core/tokens.py) against render_example, and the length figures."""

from __future__ import annotations

import pytest

from core.data import Example, render_example
from core.tokens import TokenCounter, iter_token_counts, length_histogram, length_stats

ROWS = [
    Example(1, messages=[{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "What is 2 + 2?"},
                         {"role": "assistant", "content": "4"}]),
    Example(2, messages=[{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello! How can I help?"},
                         {"role": "user", "content": "Tell me a joke about tokens."},
                         {"role": "assistant", "content": "They always come in pieces."}]),
    Example(3, text="Plain text is trained on every token, with EOS appended."),
    Example(4, messages=[{"role": "user", "content": "Ünïcödé ✓ 日本語 " * 20},
                         {"role": "assistant", "content": "ok"}]),
]


@pytest.fixture(scope="module")
def tokenizer(bundled_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_dir)


def test_counts_equal_render_example(tokenizer):
    """Every format counts exactly what render_example tokenizes before truncation."""
    expected = [render_example(tokenizer, e, 1 << 30).full_tokens for e in ROWS]
    assert TokenCounter(tokenizer).count(ROWS) == expected


def test_iter_token_counts_keeps_batches_in_order(tokenizer):
    """The pipelined iterator yields one list per batch, in order, empty batches included."""
    batches = [ROWS[:1], [], ROWS[1:3], ROWS[3:]]
    counted = list(iter_token_counts(tokenizer, batches))
    assert [len(c) for c in counted] == [1, 0, 2, 1]
    assert sum(counted, []) == TokenCounter(tokenizer).count(ROWS)


def test_rejected_row_counts_none(tokenizer):
    """A row the chat template rejects gets None; the others still count."""
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                               "{{ raise_exception('no system turns') }}{% endif %}"
                               "{{ m['content'] }}{% endfor %}")
    counts = TokenCounter(tokenizer).count(ROWS)
    assert counts[0] is None
    assert all(isinstance(c, int) for c in counts[1:])


def test_length_stats_truncation_and_percentiles():
    """Truncated rows, tokens lost and nearest-rank percentiles, as token_stats computes them."""
    stats = length_stats([10, 20, 30, 40, 600, 700], max_length=512)
    assert (stats.rows, stats.min, stats.max) == (6, 10, 700)
    assert (stats.p50, stats.p95) == (30, 700)
    assert (stats.truncated, stats.tokens_lost) == (2, 88 + 188)
    assert stats.truncated_share == pytest.approx(2 / 6)
    assert stats.total_tokens == 10 + 20 + 30 + 40 + 512 + 512
    assert length_stats([], 512).rows == 0


def test_length_histogram_bins_every_row():
    """Bins cover 0..high; values at or over high land in the last bin."""
    centres, counts, width = length_histogram([0, 5, 9, 10, 99, 150], bins=10, high=100)
    assert width == 10 and len(centres) == len(counts) == 10
    assert counts[0] == 3 and counts[1] == 1 and counts[-1] == 2
    assert sum(counts) == 6
