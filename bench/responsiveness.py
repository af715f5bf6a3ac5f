"""How responsive the training screen stays while a run trains or floods it with events.

Driven by Textual's pilot at 120x40, with the real training screen and bridge, in four cases:

- idle: no run, the baseline;
- flood: a scripted engine (tests/tui/fakes.py) emits logged steps at a high rate (default
  1,000 per second, with an evaluation and a checkpoint every 200 steps) from its own thread;
- in-process: the real engine trains the bundled SmolLM2-135M with LoRA on the sample data
  on this machine's CPU (or GPU), in a thread of the UI's process (the default for ``s``);
- detached: the same run in its own process (what ``s`` does in the app), followed through
  its events file.

Measured:

- event-loop lag: how late a 5 ms ``asyncio.sleep`` wakes up on the UI loop (p50/p99/max);
- key-to-repaint: from pressing ``g`` (switch chart) until the newly shown chart has rendered;
- how many messages reached the UI and how often the chart replotted.

Run: .venv/bin/python bench/responsiveness.py [--rate 1000] [--seconds 6]
[--cases idle,flood,in-process,detached]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "tui"), str(ROOT)]

from fakes import ScriptedEngine, StubGpuMonitor, engine_factory, h100_sample, training_series  # noqa: E402

from core.config import RunConfig  # noqa: E402
from core.detach import request_stop  # noqa: E402
from core.runs import pid_alive, read_pid  # noqa: E402
from tui.app import AppServices, make_app  # noqa: E402
from tui.widgets.loss_plot import LossPlot  # noqa: E402
from tui.widgets.lr_plot import LrGradPlot  # noqa: E402

PROBE_SECONDS = 0.005


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def real_config() -> RunConfig:
    """The sample run, long enough to outlast the measurement, with small steps."""
    cfg = RunConfig.load(ROOT / "core" / "samples" / "support_tickets.yaml")
    cfg.run_name = "bench"
    cfg.optim.max_steps = 1000
    cfg.optim.per_device_train_batch_size = 2
    cfg.data.max_length = 256
    cfg.eval.logging_steps = 1
    cfg.eval.eval_steps = cfg.eval.save_steps = 1000
    return cfg


async def measure(case: str, seconds: float, presses: int, rate: float = 1000.0) -> dict[str, float]:
    """Run the app in one of the cases (idle, flood, in-process, detached) and take the figures."""
    factory = None
    if case == "flood":
        steps = int(rate * seconds * 3)  # more than enough: the run is stopped at the end
        series = training_series(total=steps, log_every=1, eval_every=200, run_dir="runs/bench")
        factory = engine_factory(script=series, delay=1 / rate, write_events=False)
    services = AppServices(in_process=case != "detached", engine_factory=factory,
                           gpu_monitor_factory=lambda: StubGpuMonitor(h100_sample()))
    workspace = tempfile.mkdtemp(prefix="tunetop-bench-")
    config = real_config() if case in ("in-process", "detached") else RunConfig(run_name="bench")
    app = make_app(config=config, services=services, workspace=workspace)
    lags: list[float] = []
    repaints: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        if case != "idle":
            await pilot.press("s")
            ready = 10 if case == "flood" else 1  # a real run: from its first logged step on
            deadline = time.monotonic() + 600
            while screen.progress.step < ready and time.monotonic() < deadline:
                if screen.run_state == "failed":
                    raise SystemExit(f"{case}: the run failed; see {workspace}")
                await pilot.pause(0.05)
        rendered: list[float] = []
        for plot in (screen.query_one(LossPlot), screen.query_one(LrGradPlot)):
            original = plot.render

            def render(original=original):
                rendered.append(time.perf_counter())
                return original()

            plot.render = render  # type: ignore[method-assign]

        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                await asyncio.sleep(PROBE_SECONDS)
                lags.append(time.perf_counter() - start - PROBE_SECONDS)

        task = asyncio.create_task(probe())
        started = time.perf_counter()
        step0 = screen.progress.step
        gap = seconds / (presses + 1)
        for _ in range(presses):
            await asyncio.sleep(gap)
            before = len(rendered)
            t0 = time.perf_counter()
            await pilot.press("g")
            while len(rendered) == before and time.perf_counter() - t0 < 2:
                await asyncio.sleep(0.001)
            if len(rendered) > before:
                repaints.append(rendered[before] - t0)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        step1 = screen.progress.step
        bridge = screen.bridge
        replots = screen.query_one(LossPlot).replots + screen.query_one(LrGradPlot).replots
        if case == "flood":
            ScriptedEngine.instances[-1].stop()
            ScriptedEngine.instances[-1].join(5)
        elif case == "in-process":
            if screen.run_state != "running":
                raise SystemExit(f"{case}: the run is {screen.run_state}; see {workspace}")
            screen.run.stop()
            while screen.trains_in_process:
                await pilot.pause(0.1)
        elif case == "detached":
            request_stop(screen.run_dir)
            pid = read_pid(screen.run_dir)
            while pid and pid_alive(pid):
                await pilot.pause(0.1)
    rate_case = case == "flood"
    return {
        "lag_p50_ms": pct(lags, 50) * 1000,
        "lag_p99_ms": pct(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "repaint_p50_ms": pct(repaints, 50) * 1000,
        "repaint_p99_ms": pct(repaints, 99) * 1000,
        "presses": len(repaints),
        "steps_per_s": (step1 - step0) / elapsed,
        "messages_per_s": (bridge.posted / elapsed) if bridge and rate_case else 0.0,
        "events_per_s": (bridge.received / elapsed) if bridge and rate_case else 0.0,
        "replots_per_s": replots / elapsed,
        "renders_per_s": len(rendered) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="Logged steps per second fed to the UI.")
    parser.add_argument("--seconds", type=float, default=6.0, help="Length of each measurement.")
    parser.add_argument("--presses", type=int, default=30, help="Key presses per measurement.")
    parser.add_argument("--cases", default="idle,flood,in-process,detached",
                        help="Comma-separated cases to measure.")
    args = parser.parse_args()
    names = {"idle": "idle (no run)", "flood": f"flood {args.rate:,.0f} steps/s",
             "in-process": "real run, in-process", "detached": "real run, detached"}
    rows = [(names[case], asyncio.run(measure(case, args.seconds, args.presses, args.rate)))
            for case in args.cases.split(",")]
    print(f"tunetop training screen responsiveness (120x40, {args.presses} presses of g, {args.seconds:.0f}s each)")
    header = (f"{'':24} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'key→paint p50':>14} "
              f"{'key→paint p99':>14} {'steps/s':>8} {'events/s':>9} {'msgs/s':>7} {'replots/s':>9}")
    print(header)
    for name, r in rows:
        print(f"{name:24} {r['lag_p50_ms']:7.1f}ms {r['lag_p99_ms']:7.1f}ms {r['lag_max_ms']:7.1f}ms "
              f"{r['repaint_p50_ms']:12.1f}ms {r['repaint_p99_ms']:12.1f}ms {r['steps_per_s']:8.0f} "
              f"{r['events_per_s']:9.0f} {r['messages_per_s']:7.1f} {r['replots_per_s']:9.1f}")


if __name__ == "__main__":
    main()
