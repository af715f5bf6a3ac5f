"""Write screenshots/training.svg and screenshots/runs.svg from the real app with fakes.

Run: .venv/bin/python tests/tui/make_screenshots.py
The training screen shows the same demo run as the snapshot test (scripted engine, stubbed
H100 sample, frozen clock); the runs screen lists a small workspace of recorded runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent), str(ROOT)]

from fakes import (  # noqa: E402
    DEMO_RUN,
    T0,
    StubGpuMonitor,
    demo_run_before,
    demo_services,
    h100_sample,
    overfit_series,
    retime,
    run_started,
    step,
    training_series,
)

from core.config import RunConfig  # noqa: E402
from core.events import RunFailed  # noqa: E402
from tui.app import AppServices, make_app  # noqa: E402


def write_run(workspace: Path, name: str, events, pid: int | None = None) -> None:
    run_dir = workspace / name
    (run_dir / "checkpoints" / "checkpoint-60").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-60" / "COMPLETE").write_text("60")
    RunConfig(run_name=name).save(run_dir / "config.yaml")
    with open(run_dir / "events.jsonl", "w") as f:
        f.writelines(e.to_json() + "\n" for e in events)
    if pid:
        (run_dir / "worker.pid").write_text(str(pid))


async def training(out: Path) -> None:
    app = make_app(config=RunConfig(run_name=DEMO_RUN), services=demo_services(), workspace="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await demo_run_before(pilot)
        app.save_screenshot(str(out))
        app.screen.run.stop()


async def runs(out: Path) -> None:
    ws = Path("runs")
    now = time.time()
    write_run(ws, "20250301-091500-lora", retime(training_series(), now - 3 * 86400))
    write_run(ws, "20250302-140000-lora", retime(overfit_series(), now - 86400))
    write_run(ws, "20250303-100000-lora", retime([run_started(), step(5, 2.4),
              RunFailed(step=5, phase="train", reason="Out of memory during train.",
                        suggestion="Use qlora.", time=T0 + 6)], now - 7200))
    write_run(ws, "20250303-120000-lora", retime(training_series(end="stopped"), now - 3600))
    dpo = training_series(total=40, eval_losses=[0.62, 0.48])
    write_run(ws, "20250303-123000-lora-dpo",
              retime([replace(dpo[0], objective="dpo"), *dpo[1:]], now - 2400))
    write_run(ws, "20250303-130500-lora", retime(training_series(end="none")[:20], now - 70), pid=os.getpid())
    services = AppServices(gpu_monitor_factory=lambda: StubGpuMonitor(h100_sample()))
    app = make_app(services=services, workspace=str(ws))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        for _ in range(100):
            if app.screen.runs:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        app.save_screenshot(str(out))


def main() -> None:
    target = ROOT / "screenshots"
    target.mkdir(exist_ok=True)
    os.environ["TZ"] = "UTC"
    time.tzset()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        asyncio.run(training(target / "training.svg"))
        asyncio.run(runs(target / "runs.svg"))
    print(f"wrote {target / 'training.svg'} and {target / 'runs.svg'}")


if __name__ == "__main__":
    main()
