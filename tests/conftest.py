"""Shared fixtures: an isolated cache and a tiny model built from a config.

The bundled model is converted once per machine into ``~/.cache/tunetop``; tests reuse that
conversion (it is read-only for them) but build their tiny models in a session temp dir.
"""

from __future__ import annotations

import os
import signal

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session", autouse=True)
def base_answers_cache(tmp_path_factory):
    """The forgetting guard caches base answers in a session folder, never the user's cache
    (an environment variable, so detached and launched workers use it too)."""
    from core.forgetting import ANSWERS_ENV

    path = tmp_path_factory.mktemp("base-answers")
    before = os.environ.get(ANSWERS_ENV)
    os.environ[ANSWERS_ENV] = str(path)
    yield path
    if before is None:
        os.environ.pop(ANSWERS_ENV, None)
    else:
        os.environ[ANSWERS_ENV] = before


@pytest.fixture(scope="session")
def bundled_dir():
    """Directory of the converted bundled model (converted on first use)."""
    from core.models import ensure_bundled_model

    return ensure_bundled_model()


@pytest.fixture(scope="module")
def tokenizer(bundled_dir):
    """The bundled model's tokenizer and chat template (no weights), loaded once per module."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir):
    """A 2-layer Llama with the bundled tokenizer and chat template, random weights, seed 0."""
    from helpers import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), bundled_dir)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """The first 96 rows of the sample dataset: 86 train, 10 validation."""
    from helpers import sample_rows

    return sample_rows(tmp_path_factory.mktemp("data") / "tickets.jsonl", 96)


@pytest.fixture
def keep_signal_handlers():
    """``tunetop train`` run in the test process installs stop handlers for SIGINT, SIGTERM
    and SIGHUP; put the test runner's back afterwards."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in signals}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
