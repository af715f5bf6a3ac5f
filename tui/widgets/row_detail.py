"""The dataset screen's Row pane: one row at once, then rendered for the model.

:meth:`RowDetailPane.show_row` draws what the row store knows (turns, problems, the token
count) and renders the row with the tokenizer's chat template in a thread worker
(:func:`tui.dataset_tasks.render_row`; a long row takes a moment); the rendering replaces
the row's status when it arrives, unless another row (or max length) is shown by then.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import on, work
from textual.worker import Worker, WorkerState

from core.data import Example, RenderOptions
from tui import dataset_tasks as tasks
from tui.dataset_tasks import RenderResult
from tui.widgets.token_view import RowDetail, TokenView


class RowDetailPane(TokenView):
    """A row's turns and problems, and the text the model trains on with its token mask."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._renderer: Worker | None = None
        """The rendering of the row shown, until its result is shown."""

    @property
    def rendering(self) -> bool:
        """Whether the shown row is being rendered, or its rendering is done but not shown
        yet (the worker's state changes before its message is handled)."""
        return self._renderer is not None and self._renderer.state != WorkerState.CANCELLED

    def show_row(self, detail: RowDetail | None, message: str = "", tokenizer: Any = None,
                 assistant_only_loss: bool = True, options: RenderOptions | None = None) -> None:
        """Show ``detail`` (``message`` without a row) and, given a ``tokenizer``, render it
        with the rendering ``options`` (template, system prompt)."""
        self._renderer = None  # a rendering of what was shown before no longer applies
        self.workers.cancel_group(self, "render")
        self.show(detail, message)
        if detail is not None and detail.example is not None and tokenizer is not None:
            self._renderer = self._render_row(tokenizer, detail.example, detail.row,
                                            detail.max_length, assistant_only_loss, options)

    @work(thread=True, exclusive=True, group="render", exit_on_error=False)
    def _render_row(self, tokenizer: Any, example: Example, row: int, max_length: int,
                    assistant_only_loss: bool, options: RenderOptions | None) -> RenderResult:
        """Render the row for the model (:func:`tui.dataset_tasks.render_row`)."""
        return tasks.render_row(tokenizer, example, row, max_length, assistant_only_loss,
                                options)

    @on(Worker.StateChanged)
    def rendered(self, event: Worker.StateChanged) -> None:
        """Show the rendering of the row still shown; say why one failed."""
        worker, state = event.worker, event.state
        if worker is not self._renderer or state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        self._renderer = None
        if state == WorkerState.ERROR:
            self.notify(f"Rendering failed: {type(worker.error).__name__}: {worker.error}",
                        severity="error")
            return
        result: RenderResult = worker.result
        if (self.detail is not None and result.row == self.detail.row
                and result.max_length == self.detail.max_length):
            self.show(replace(self.detail, rendered=result.rendered, cut_text=result.cut_text,
                              status=result.error))
