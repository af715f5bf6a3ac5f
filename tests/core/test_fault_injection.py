"""SIGKILL a training run at random moments, some in the middle of a checkpoint write, and
resume it each time: every resume starts from the newest whole checkpoint and the run ends."""

from __future__ import annotations



from fault_injection import fault_config, inject  # noqa: E402


def test_ten_sigkills_then_the_run_finishes(tiny_model_dir, small_data, tmp_path):
    config = fault_config(str(tiny_model_dir), str(small_data), max_steps=45)
    report = inject(config, tmp_path / "runs", kills=10, seed=1, timeout=1800)  # slack for a loaded machine
    text = "\n".join(report.lines())
    assert not report.failures, text
    assert sum(report.kills.values()) == 10 and all(report.kills.values()), text
    assert report.kills_during_write >= 1, text
    assert report.resumes == 10 and report.resumes_training >= 5, text
    assert report.resumes_from_newest_complete == report.resumes_training, text
    assert report.finished and report.final_step == 45, text
