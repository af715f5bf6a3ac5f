"""How fast the dataset screen opens big files, and how well it answers keys meanwhile.

Generates a 1,000,000-row JSONL (~500 MB of chat rows) and a 100,000-row one in a temporary
directory, then drives the real app through Textual's pilot at 120x40 with the bundled
model's tokenizer (converted once per machine):

- time to first page: from Enter on the path until the table holds rows (target < 2 s);
- reading the 1M rows: total time and memory, while keys are pressed: event-loop lag (how
  late a 10 ms ``asyncio.sleep`` wakes, p50/p99/max) and key-to-paint (a ``down`` or
  ``pagedown`` key every 0.2 s, sent straight to the driver, until the table has redrawn
  with the new cursor);
- token statistics for the 100k rows (batch counts, :mod:`core.tokens`; target < 15 s on two
  cores), with the same key and lag figures, then the content checks on those rows.

Run: .venv/bin/python bench/dataset_open.py [--rows 1000000] [--token-rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from textual import events  # noqa: E402

from core.config import RunConfig  # noqa: E402
from tui.app import make_app  # noqa: E402
from tui.screens.dataset import DatasetScreen  # noqa: E402

PROBE_SECONDS = 0.01
WORDS = ("order parcel refund invoice account password router firmware delivery courier late "
         "damaged broken charged twice cancel subscription upgrade plan warranty replace screen "
         "battery app crash login error code please urgent thanks hello team help").split()


def sentence(rng: random.Random) -> str:
    """A random sentence of 6 to 14 words."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def write_rows(path: Path, rows: int, seed: int = 0) -> float:
    """Write ``rows`` chat rows (~500 bytes each) to ``path``; returns the size in MB."""
    rng = random.Random(seed)
    system = {"role": "system", "content": "You are a support assistant. Answer briefly."}
    with path.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            user = " ".join(sentence(rng) for _ in range(rng.randint(2, 5)))
            answer = " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))
            f.write(json.dumps({"messages": [system, {"role": "user", "content": user},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path.stat().st_size / 1e6


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, in the same unit."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Probe:
    """Measures event-loop lag and key-to-paint on the table while a phase runs.

    Light on purpose, so that it measures the app rather than itself: a 10 ms sleep for the
    lag, a key every 0.2 s, and paints matched to keys afterwards from timestamps (no polling).
    """

    def __init__(self, app, screen: DatasetScreen) -> None:
        self.app = app
        self.screen = screen
        self.lags: list[float] = []
        self._sent: list[tuple[float, int]] = []
        self._painted: list[tuple[float, int]] = []
        table = screen.table
        original = table.render_line

        def render_line(y: int, original=original):
            if y == 1:  # the first row line: once per repaint of the table
                self._painted.append((time.perf_counter(), table.cursor))
            return original(y)

        table.render_line = render_line  # type: ignore[method-assign]

    async def lag(self, stop: asyncio.Event) -> None:
        """Sample how late a short sleep wakes up until ``stop`` is set."""
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(PROBE_SECONDS)
            self.lags.append(time.perf_counter() - start - PROBE_SECONDS)

    async def keys(self, stop: asyncio.Event, gap: float = 0.2) -> None:
        """Press down / pagedown (alternately) until ``stop``, sent straight to the driver."""
        table = self.screen.table
        driver = self.app._driver
        i = 0
        while not stop.is_set():
            await asyncio.sleep(gap)
            if not len(table):
                continue
            if table.cursor >= len(table) - table.page - 1:
                table.cursor = 0
                continue
            self._sent.append((time.perf_counter(), table.cursor))
            driver.send_message(events.Key(("down", "pagedown")[i % 2], None))
            i += 1

    def key_to_paint(self) -> list[float]:
        """Per key, seconds until the table was first painted with the cursor moved."""
        out = []
        for sent, before in self._sent:
            paint = next((t for t, cursor in self._painted if t >= sent and cursor != before), None)
            if paint is not None:
                out.append(paint - sent)
        return out

    def report(self, name: str) -> str:
        """One line of figures in milliseconds."""
        lag = [x * 1000 for x in self.lags]
        paint = [x * 1000 for x in self.key_to_paint()]
        return (f"{name:34} lag p50 {pct(lag, 50):5.1f} p99 {pct(lag, 99):6.1f} "
                f"max {max(lag, default=float('nan')):6.1f} ms | key→paint p50 "
                f"{pct(paint, 50):5.1f} p99 {pct(paint, 99):6.1f} ms ({len(paint)} keys)")


async def open_path(pilot, screen: DatasetScreen, path: Path) -> float:
    """Type ``path`` into the path input, press Enter, return the time Enter was sent."""
    await pilot.press("o")
    screen.query_one("#dataset-path").value = str(path)
    sent = time.perf_counter()
    pilot.app._driver.send_message(events.Key("enter", "\r"))
    await wait_for(lambda: screen.loader.ref == str(path), 30, 0.001)
    return sent


def cpu_seconds() -> float:
    """CPU time used by this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def probed(app, screen: DatasetScreen, until, timeout: float) -> tuple[Probe, float, float]:
    """Press keys and sample lag until ``until()``; the probe, wall and CPU seconds."""
    probe = Probe(app, screen)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(probe.lag(stop)), asyncio.create_task(probe.keys(stop))]
    started, cpu = time.perf_counter(), cpu_seconds()
    await wait_for(until, timeout, 0.02)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stop.set()
    await asyncio.gather(*tasks)
    return probe, wall, cpu


def core_token_rate(path: Path) -> tuple[int, float, float]:
    """Rows, wall and CPU seconds to count a file's tokens with core.tokens alone (no UI)."""
    from core.data import open_rows
    from core.models import load_tokenizer
    from core.tokens import COUNT_BATCH, iter_token_counts

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    examples = [row.example for row in open_rows(path, "messages").read()]
    batches = (examples[i:i + COUNT_BATCH] for i in range(0, len(examples), COUNT_BATCH))
    started, cpu = time.perf_counter(), cpu_seconds()
    for _ in iter_token_counts(tokenizer, batches):
        pass
    return len(examples), time.perf_counter() - started, cpu_seconds() - cpu


async def wait_for(predicate, timeout: float, step: float = 0.002) -> float:
    """Poll ``predicate`` until true; the time it became true."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark phase did not finish in time")
        await asyncio.sleep(step)
    return time.perf_counter()


async def run(big: Path, mid: Path) -> list[str]:
    """Drive the app through the phases; lines of figures."""
    out: list[str] = []
    app = make_app(config=RunConfig(run_name="bench"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        started = time.perf_counter()
        await wait_for(lambda: screen.loader.tokenizer is not None and not screen.busy, 600, 0.05)
        out.append(f"{'tokenizer + sample ready':34} {time.perf_counter() - started:6.1f} s "
                   "(bundled model; includes importing transformers)")
        probe, _, _ = await probed(app, screen, _after(3), 10)
        out.append(probe.report("idle (baseline)"))

        # 1. the big file: first page, then reading with keys pressed
        sent = await open_path(pilot, screen, big)
        first = await wait_for(lambda: screen.store is not None and len(screen.store) > 0
                               and screen.table.row_at(0) is not None, 60, 0.001)
        out.append(f"{'time to first page':34} {(first - sent) * 1000:6.0f} ms "
                   f"({len(screen.store):,} rows in the table, the rest still reading)")
        probe, wall, cpu = await probed(app, screen, lambda: "read" not in screen.loader.phases, 1800)
        rows = len(screen.store)
        out.append(f"{'read ' + format(rows, ',') + ' rows':34} {first - sent + wall:6.1f} s "
                   f"({cpu:.0f} CPU s), {rows / (first - sent + wall):,.0f} rows/s, "
                   f"peak RSS {rss_mb():,.0f} MB")
        out.append(probe.report("  keys while reading"))
        probe, _, _ = await probed(app, screen, _after(5), 10)
        out.append(probe.report(f"  keys on {rows:,} rows (counting)"))

        # 2. 100k rows: token statistics with the bundled tokenizer, then the checks
        sent = await open_path(pilot, screen, mid)
        await wait_for(lambda: "tokens" in screen.loader.phases, 600, 0.01)
        out.append(f"{'read ' + format(len(screen.store), ',') + ' rows':34} "
                   f"{time.perf_counter() - sent:6.1f} s")
        probe, wall, cpu = await probed(app, screen, lambda: "tokens" not in screen.loader.phases, 1800)
        counted = screen.loader.summary.counted
        lengths = screen.loader.summary.lengths
        out.append(f"{'token stats ' + format(counted, ',') + ' rows':34} {wall:6.1f} s "
                   f"({cpu:.1f} CPU s), {counted / wall:,.0f} rows/s, p50 "
                   f"{lengths.p50 if lengths else '?'} tokens per row")
        out.append(probe.report("  keys while counting"))
        probe, wall, cpu = await probed(app, screen, lambda: not screen.busy, 1800)
        out.append(f"{'content checks (dataset_stats)':34} {wall:6.1f} s ({cpu:.1f} CPU s) on "
                   f"{screen.loader.summary.checked_rows:,} rows")
        out.append(probe.report("  keys while checking"))
    rows, wall, cpu = core_token_rate(mid)
    out.append(f"{'core.tokens alone, no UI':34} {wall:6.1f} s ({cpu:.1f} CPU s) for {rows:,} rows")
    return out


def _after(seconds: float):
    """A predicate that turns true ``seconds`` from now."""
    end = time.perf_counter() + seconds
    return lambda: time.perf_counter() >= end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows of the big file.")
    parser.add_argument("--token-rows", type=int, default=100_000,
                        help="Rows of the file whose tokens are counted.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunetop-bench-") as tmp:
        started = time.perf_counter()
        big_mb = write_rows(Path(tmp) / "big.jsonl", args.rows)
        write_rows(Path(tmp) / "mid.jsonl", args.token_rows, seed=1)
        print(f"generated {args.rows:,} rows ({big_mb:,.0f} MB) and {args.token_rows:,} rows "
              f"in {time.perf_counter() - started:.0f} s")
        load = os.getloadavg()
        lines = asyncio.run(run(Path(tmp) / "big.jsonl", Path(tmp) / "mid.jsonl"))
    print(f"tunetop dataset screen, 120x40, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} at start ({statistics.mean(os.getloadavg()):.1f} at the end)")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
