"""``python -m tui.cli``: the same as the ``tunetop`` console script."""

from tui.cli import run

run()
