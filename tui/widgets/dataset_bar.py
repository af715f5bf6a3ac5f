"""The dataset screen's bar: the dataset path, the model and the max length, each an input.

Enter in an input posts what was typed as one of the bar's messages; the screen decides
what follows (opening a file, loading a tokenizer, re-marking long rows). A max length under
the config's minimum is refused here, with a message, and the input shows the old value.
Leaving an input without Enter puts back the value in use (:meth:`DatasetBar.revert`): the bar
never shows a value the app is not using. The path input completes file names.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label

from tui.widgets.path_suggester import PathSuggester

MIN_MAX_LENGTH = 16
"""The smallest max length the config accepts (``RunConfig.validate``, ``data.max_length``)."""


class DatasetBar(Horizontal):
    """Inputs for the dataset path, the model reference and the max length."""

    @dataclass
    class PathSubmitted(Message):
        """Enter in the path input with a path typed."""

        path: str

    @dataclass
    class ModelSubmitted(Message):
        """Enter in the model input with a reference typed."""

        model: str

    @dataclass
    class MaxLengthSubmitted(Message):
        """Enter in the max-length input with a valid length."""

        max_length: int

    max_length = 0
    """The max length in use: a refused entry puts it back."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._in_use: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        """Label and input for each of path, model and max length."""
        yield Label("Data", classes="bar-label")
        yield Input(id="dataset-path", compact=True, placeholder="path, or sample:support-tickets",
                    suggester=PathSuggester(samples=True,
                                            suffixes=(".jsonl", ".json", ".csv", ".parquet")))
        yield Label("Model", classes="bar-label")
        yield Input(id="dataset-model", compact=True, placeholder="model reference")
        yield Label("Max len", classes="bar-label")
        yield Input(id="dataset-max-length", compact=True, type="integer")

    def show(self, *, path: str | None = None, model: str | None = None,
             max_length: int | None = None) -> None:
        """Put the given values in their inputs (as the screen now uses them)."""
        if max_length is not None:
            self.max_length = max_length
        for selector, value in (("#dataset-path", path), ("#dataset-model", model),
                                ("#dataset-max-length", max_length)):
            if value is not None:
                self._in_use[selector] = str(value)
                self.query_one(selector, Input).value = str(value)

    def revert(self) -> None:
        """Put the values in use back into inputs holding text never entered."""
        for selector, value in self._in_use.items():
            field_input = self.query_one(selector, Input)
            if field_input.value != value:
                field_input.value = value

    @on(Input.Blurred)
    def input_left(self, event: Input.Blurred) -> None:
        """Left without Enter: the input shows the value in use again."""
        event.stop()
        self.revert()

    @on(Input.Submitted, "#dataset-path")
    def path_submitted(self, event: Input.Submitted) -> None:
        """Ask to open the typed path (an empty one is ignored)."""
        event.stop()
        if event.value.strip():
            self.post_message(self.PathSubmitted(event.value))

    @on(Input.Submitted, "#dataset-model")
    def model_submitted(self, event: Input.Submitted) -> None:
        """Ask to switch to the typed model (the screen ignores the current one)."""
        event.stop()
        self.post_message(self.ModelSubmitted(event.value))

    @on(Input.Submitted, "#dataset-max-length")
    def max_length_submitted(self, event: Input.Submitted) -> None:
        """Pass on a max length of at least :data:`MIN_MAX_LENGTH` tokens; refuse others."""
        event.stop()
        try:
            value = int(event.value)
        except ValueError:
            value = 0
        if value < MIN_MAX_LENGTH:
            self.notify(f"Max length must be a whole number of at least {MIN_MAX_LENGTH} "
                        "tokens.", severity="error")
            event.input.value = str(self.max_length)
            return
        self.max_length = value
        self._in_use["#dataset-max-length"] = str(value)
        self.post_message(self.MaxLengthSubmitted(value))
