"""Library output stays off the terminal while held and lands in the run's debug.log."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings

from core.noise import LibraryOutput, hold_library_output


def test_held_warnings_and_records_go_to_the_file_not_the_terminal(tmp_path, capfd):
    noise = hold_library_output()
    try:
        warnings.warn("`old_thing` is deprecated and will be removed in v6", FutureWarning, stacklevel=1)
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward")
        logging.getLogger("some.other.library").warning("stray record")
        noise.write_to(tmp_path / "debug.log")  # records before the file existed come first
        logging.getLogger("transformers.modeling_utils").warning("Some weights were not initialized")
    finally:
        noise.release()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    text = (tmp_path / "debug.log").read_text()
    for line in ("FutureWarning: `old_thing` is deprecated", "Failed to load CPU gemm_4bit_forward",
                 "stray record", "Some weights were not initialized"):
        assert line in text
    assert text.index("gemm_4bit") < text.index("Some weights")
    assert not noise.held


def test_holds_nest_and_the_last_release_restores_the_libraries():
    root = logging.getLogger()
    handlers, propagate = list(root.handlers), logging.getLogger("transformers").propagate
    output = LibraryOutput()
    output.hold()
    output.hold()
    output.release()
    assert output.held and logging.getLogger("peft").propagate is False
    output.release()
    assert not output.held
    assert root.handlers == handlers and logging.getLogger("transformers").propagate == propagate
    assert logging.getLogger("peft").propagate is True


def test_transformers_own_stderr_handler_and_bars_are_off_once_the_file_is_named(tmp_path):
    """In a fresh process, as the engine does it: hold, import transformers (which writes to
    stderr through its own handler and draws bars), name the run's file, then train."""
    code = textwrap.dedent(f"""
        from core.noise import hold_library_output
        noise = hold_library_output()
        import transformers.utils.logging as tl
        noise.write_to({str(tmp_path / "debug.log")!r})
        tl.get_logger("transformers.trainer").warning("trainer noise")
        assert not tl.is_progress_bar_enabled()
        for _ in tl.tqdm(range(3), desc="Loading weights"):
            pass
        noise.release()
        assert tl.is_progress_bar_enabled()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    assert "trainer noise" in (tmp_path / "debug.log").read_text()
