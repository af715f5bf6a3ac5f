"""Batched generation for a review set against one prompt at a time, on the bundled model.

Both runs use the same loaded model, the same held-out prompts (rendered with the training
chat template) and greedy decoding; the batched run pads on the left. Batching speeds up the
token-by-token decoding, not the prompt pass (compute-bound on a CPU either way), so the
speed-up grows with answer length: the default 128 new tokens is half the review default. Printed: both wall
times, the speed-up, and whether every output is identical. A short warm-up generation runs
first so neither side pays for first-call set-up. Exit status 1 when the outputs differ or
the speed-up is below ``--min-speedup`` (3x by default).

Run: .venv/bin/python bench/generation.py [--prompts 8] [--max-new-tokens 128] [--batch-size 8]
[--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.generate import GenerationSettings  # noqa: E402
from generation_setup import describe_setup, generation_parser, prepare  # noqa: E402


def main() -> int:
    """Time both ways, compare outputs, print the verdict."""
    parser = generation_parser(__doc__.split("\n\n")[0], prompts=8, max_new_tokens=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-speedup", type=float, default=3.0)
    args = parser.parse_args()

    import torch

    gen, conversations, load_seconds = prepare(args)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print(describe_setup(gen, len(conversations), settings, load_seconds))

    gen.generate(conversations[:2], GenerationSettings(max_new_tokens=2))  # warm-up

    def timed(run):
        """``(result, seconds)`` of ``run()``, synchronising the GPU around it."""
        if gen.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run()
        if gen.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    one, t_one = timed(lambda: gen.generate_one_by_one(conversations, settings))
    print(f"one at a time : {t_one:8.2f} s  ({len(conversations) / t_one:.2f} prompts/s)")
    batched, t_batch = timed(lambda: [t for _, t in gen.generate_all(conversations, settings)])
    print(f"batch of {args.batch_size:<4} : {t_batch:8.2f} s  ({len(conversations) / t_batch:.2f} prompts/s)")
    ratio = t_one / t_batch
    same = batched == one
    print(f"speed-up      : {ratio:.2f}x (target {args.min_speedup:g}x)")
    print(f"outputs match : {'yes' if same else 'NO'} ({sum(a == b for a, b in zip(batched, one))}"
          f"/{len(one)} identical)")
    for i, (a, b) in enumerate(zip(one, batched)):
        if a != b:
            print(f"  prompt {i + 1} differs:\n    one:   {a!r}\n    batch: {b!r}")
    print(f"first answer  : {one[0][:100]!r}")
    return 0 if same and ratio >= args.min_speedup else 1


if __name__ == "__main__":
    sys.exit(main())
