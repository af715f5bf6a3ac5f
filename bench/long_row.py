"""Memory and time to render one very long row (issue 15): rendering must cut a row before it
tokenizes it with offsets, so memory per row stays bounded whatever its length.

Run: ``python bench/long_row.py [MB ...] [--max-length N]`` (default 8 and 40 MB at 2048).
Each size renders in a fresh process (peak RSS is per process) and prints the seconds, the
peak resident memory above the process's size before rendering, and the token counts.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time


def _child(megabytes: int, max_length: int) -> None:
    from core.config import BUNDLED_MODEL
    from core.data import Example, render_example
    from core.models import load_tokenizer

    tokenizer = load_tokenizer(BUNDLED_MODEL)
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "lorem", "ipsum", "dolor", "the", "a", "\n"]
    size = megabytes * 2**20
    text = " ".join(rng.choice(words) for _ in range(size // 5))[:size]
    example = Example(1, messages=[{"role": "user", "content": text},
                                   {"role": "assistant", "content": "A short answer."}])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    rendered = render_example(tokenizer, example, max_length)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mb": megabytes, "seconds": round(seconds, 1),
                      "peak_above_start_mb": (peak - before) // 1024,
                      "full_tokens": rendered.full_tokens, "kept": rendered.num_tokens}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[8, 40], help="Row sizes in MB.")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.max_length)
        return
    for mb in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(mb), "--max-length",
                               str(args.max_length)], capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        print(lines[-1] if done.returncode == 0 and lines
              else f"{mb} MB: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})")


if __name__ == "__main__":
    main()
