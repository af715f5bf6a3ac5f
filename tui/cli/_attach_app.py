"""The app that ``tunetop attach`` opens: a module of its own because it imports the whole
app (Textual and every screen), which building the command-line parser must not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tui.app
from tui.app import TunetopApp


class AttachApp(TunetopApp):
    """The tunetop app opened on the training screen, following one run."""

    DEFAULT_MODE = "training"
    # Textual reads a relative CSS_PATH beside the subclass's own file: the app's sheet is in tui/.
    CSS_PATH = Path(tui.app.__file__).parent / str(TunetopApp.CSS_PATH)

    def __init__(self, run_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attach_dir = Path(run_dir)
        """The followed run; the training screen reads it when it mounts."""
