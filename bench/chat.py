"""Chat streaming against plain generation, on the bundled model: first-token latency and
throughput.

For each held-out prompt, the reply is generated twice on the same loaded model, greedily:
streamed through :func:`core.chat.stream_reply` (what the chat screen runs) and not streamed
through :meth:`core.generate.TextGenerator.generate` (what the review runs), alternating
which goes first. Printed per way: the median first-token latency (streamed: from the call to
the first token; the issue's target is under 1 s once the model is loaded), and tokens per
second over the whole call (both ways count from the call, so the figures compare). The
texts must be identical. A short warm-up runs first. Exit status 1 when a text differs, the
median first token takes over ``--max-first-token`` seconds, or streaming is more than
``--max-slowdown`` slower.

Run: .venv/bin/python bench/chat.py [--prompts 6] [--max-new-tokens 64] [--device cpu|cuda]
[--threads N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.generate import GenerationSettings, render_prompt  # noqa: E402
from generation_setup import describe_setup, generation_parser, prepare  # noqa: E402


def main() -> int:
    """Time both ways on each prompt, compare the texts, print the verdict."""
    parser = generation_parser(__doc__.split("\n\n")[0], prompts=6, max_new_tokens=64)
    parser.add_argument("--max-first-token", type=float, default=1.0)
    parser.add_argument("--max-slowdown", type=float, default=0.10)
    args = parser.parse_args()

    from core.chat import stream_reply

    gen, conversations, load_seconds = prepare(args)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=1)
    print(describe_setup(gen, len(conversations), settings, load_seconds))

    warm = GenerationSettings(max_new_tokens=4, batch_size=1)
    gen.generate(conversations[:1], warm)
    stream_reply(gen, render_prompt(gen.tokenizer, conversations[0]), warm, lambda t, n: None)

    first_tokens, streamed_rates, plain_rates, same = [], [], [], 0
    for i, conversation in enumerate(conversations):
        prompt = render_prompt(gen.tokenizer, conversation)

        def streamed():
            reply = stream_reply(gen, prompt, settings, lambda t, n: None)
            return reply.text, reply.tokens, reply.seconds, reply.first_token_seconds

        def plain():
            t0 = time.perf_counter()
            (text,) = gen.generate([conversation], settings)
            seconds = time.perf_counter() - t0
            return text, len(gen.tokenizer(text, add_special_tokens=False).input_ids), seconds, None

        order = (streamed, plain) if i % 2 == 0 else (plain, streamed)
        results = {way.__name__: way() for way in order}
        s_text, s_tokens, s_seconds, first = results["streamed"]
        p_text, _, p_seconds, _ = results["plain"]
        same += s_text == p_text
        first_tokens.append(first or 0.0)
        # Both rates use the streamed reply's token count (the same tokens, generated twice).
        streamed_rates.append(s_tokens / s_seconds)
        plain_rates.append(s_tokens / p_seconds)
        print(f"prompt {i + 1}: {s_tokens} tokens; streamed {s_seconds:.2f} s (first token "
              f"{first:.3f} s), plain {p_seconds:.2f} s; same text: {s_text == p_text}")

    first = statistics.median(first_tokens)
    streamed_rate, plain_rate = statistics.median(streamed_rates), statistics.median(plain_rates)
    slowdown = 1 - streamed_rate / plain_rate
    print(f"first token (median): {first:.3f} s (target < {args.max_first_token:g} s)")
    print(f"tokens/s (median): streamed {streamed_rate:.1f}, plain {plain_rate:.1f} "
          f"({slowdown:+.1%} slower streamed; target < {args.max_slowdown:.0%})")
    print(f"identical texts: {same}/{len(conversations)}")
    ok = same == len(conversations) and first < args.max_first_token and slowdown < args.max_slowdown
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
