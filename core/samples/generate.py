"""Generate the bundled support-ticket sample dataset.

Each row is a short, messy customer-support ticket (the user message) and its fields as one
line of strict JSON (the assistant message), in OpenAI ``messages`` format::

    {"category": "billing", "priority": "high", "product": "Router X2", "order_id": "ORD-48213"}

The labels follow fixed rules a small model can learn in a few epochs but cannot guess from
the prompt alone: the category comes from what the ticket is about, the priority from the
urgency phrases in it (no phrase means ``medium``), the product is one of :data:`PRODUCTS`
named in the text, and the order id is the ``ORD-#####`` written in the text, or ``null``.

The output is deterministic: ``python -m core.samples.generate`` rewrites
``support_tickets_train.jsonl`` and ``support_tickets_heldout.jsonl`` byte for byte. The two
splits come from different seeds and the held-out split never repeats a training ticket.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
"""Folder of the committed sample files (this module's folder)."""
TRAIN_FILE = "support_tickets_train.jsonl"
"""File name of the training split."""
HELDOUT_FILE = "support_tickets_heldout.jsonl"
"""File name of the held-out split, used for evaluation and blind review."""
TRAIN_ROWS = 640
"""Rows in the training split."""
HELDOUT_ROWS = 120
"""Rows in the held-out split."""
TRAIN_SEED = 640_2025
"""Seed of the training split's random stream."""
HELDOUT_SEED = 120_7331
"""Seed of the held-out split's random stream, distinct from :data:`TRAIN_SEED`."""

CATEGORIES = ("billing", "shipping", "account", "technical", "refund", "other")
"""Allowed values of ``category``."""
PRIORITIES = ("low", "medium", "high", "urgent")
"""Allowed values of ``priority``."""
PRODUCTS = (
    "Router X2",
    "MeshPoint Pro",
    "SmartCam 360",
    "AirBuds Lite",
    "PowerBank 20K",
    "Nova Phone 12",
    "PureAir S3",
    "ThermoHub",
    "StreamStick 4K",
    "VoltCharger 65W",
    "SoundBar Mini",
    "KettleOne",
)
"""Allowed values of ``product``; every ticket names exactly one."""
KEYS = ("category", "priority", "product", "order_id")
"""Keys of every answer, in this order."""
ORDER_ID_PATTERN = re.compile(r"ORD-\d{5}")
"""What an order id looks like in a ticket and in an answer."""

SYSTEM_PROMPT = (
    "Extract the support ticket as one line of JSON with keys in this order: "
    "category (billing, shipping, account, technical, refund, other), "
    "priority (low, medium, high, urgent), product, order_id (ORD-##### or null)."
)
"""The one system prompt shared by every row."""

ISSUES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {product}.",
        "my card got billed two times for the {product} purchase.",
        "The invoice for my {product} shows the wrong amount.",
        "I need a proper invoice with my company name on it for the {product}.",
        "My payment for the {product} was declined, but the money still left my bank account.",
        "The discount code did not apply when I paid for the {product}.",
        "There is a charge on my card statement for a {product} that I don't recognize.",
        "I'd like to change the credit card used for my {product} installment plan.",
        "Why was I charged sales tax twice on the {product}?",
        "The price I paid for the {product} is higher than the price shown at checkout.",
        "The {product} protection plan renewed and billed me without any notice.",
        "How do I pay the remaining balance on my {product} installments?",
        "The receipt for my {product} is missing the VAT number.",
        "I got billed for a {product} that was never in my cart.",
    ),
    "shipping": (
        "My {product} still hasn't arrived.",
        "The tracking for my {product} has not updated in five days.",
        "The {product} was delivered to the wrong address.",
        "The courier says my {product} was delivered but there is nothing at my door.",
        "Can I change the delivery address for my {product}? It hasn't shipped yet.",
        "When will my {product} ship? The order page still says processing.",
        "the box came with only the cable, the {product} itself was not in the package.",
        "The delivery date for my {product} keeps moving back.",
        "My {product} has been stuck at customs for ten days.",
        "According to the driver's photo the {product} went to my neighbour's house.",
        "Can I pick up my {product} from the depot instead of home delivery?",
        "The {product} shipped to my old address instead of the new one.",
        "The parcel with my {product} was returned to sender by the courier.",
    ),
    "account": (
        "I can't log in to the account I used to register my {product}.",
        "The password reset email never arrives, so I can't get into my account to set up the {product}.",
        "My account got locked after too many login attempts while setting up the {product}.",
        "I need to change the email address on my account, the {product} is linked to it.",
        "The two-factor code never reaches my phone, so I can't sign in and manage the {product}.",
        "Please delete my account and all my data, I no longer use the {product}.",
        "Someone else logged into my account and added a {product} to it.",
        "I want to move my {product} registration to my partner's account.",
        "I have two accounts and the {product} is registered on the old one, can you merge them?",
        "My username changed by itself after I registered the {product}.",
        "I can't verify my account, the link in the email for my {product} registration has expired.",
        "How do I remove the {product} from my account profile?",
    ),
    "technical": (
        "My {product} won't turn on anymore.",
        "The {product} keeps disconnecting from wifi every few minutes.",
        "After the latest firmware update my {product} is stuck on a blinking light.",
        "The {product} shows error code E{code} when I start it.",
        "The app can't find my {product} during setup.",
        "My {product} gets really hot and then shuts down.",
        "The battery of my {product} drains in about an hour.",
        "Bluetooth pairing with the {product} fails every time.",
        "The {product} makes a loud buzzing noise.",
        "the buttons on my {product} stopped responding.",
        "My {product} restarts on its own several times a day.",
        "The {product} does not charge, even with a different cable.",
        "The {product} freezes whenever I open the settings screen.",
    ),
    "refund": (
        "I'd like a refund for my {product}.",
        "I want to return the {product} and get my money back.",
        "The {product} is not what I expected, how do I send it back for a refund?",
        "I cancelled my {product} order, when will I get the refund?",
        "Your site says 30-day returns, so I'd like to return my {product} for a refund.",
        "You approved my return for the {product} two weeks ago and I still don't have my money back.",
        "Please refund the {product}, I changed my mind.",
        "I sent the {product} back a few days ago, can you confirm the refund?",
        "The {product} was a gift I don't need, can I return it for a refund?",
        "I want my money back for the {product}, it's not worth the price.",
        "How long does a refund take? I returned the {product} already.",
        "I'd like to return my unopened {product} and be refunded.",
    ),
    "other": (
        "Do you sell a carrying case that fits the {product}?",
        "Just wanted to say the {product} is great, thank you!",
        "Is the {product} available in other colours?",
        "Do you offer a student discount on the {product}?",
        "Will there be a newer version of the {product} this year?",
        "Can I buy the {product} in one of your physical stores?",
        "I'd like to suggest adding a dark mode to the {product} app.",
        "Is the {product} made from recycled materials?",
        "Are you hiring? I love the {product} and would like to work for you.",
        "Can I get a printed manual for the {product} in Spanish?",
        "Does the {product} come in a gift box?",
        "I'm reviewing the {product} for my blog, can I get some press photos?",
        "What is the warranty period on the {product}?",
    ),
}
"""The sentence that says what each category of ticket is about."""

DETAILS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I checked my bank statement twice.",
        "The amount was taken from my card on the same day.",
        "I have screenshots of the payment page.",
        "My bank says the charge is pending.",
        "I paid with a visa card ending in {digits}.",
    ),
    "shipping": (
        "I have been checking the tracking page every morning.",
        "Nobody rang the doorbell.",
        "I was home all day waiting for it.",
        "The courier's hotline just hangs up on me.",
        "The status says out for delivery since Monday.",
    ),
    "account": (
        "I already tried a different browser.",
        "I checked my spam folder too.",
        "I still have access to my old email address.",
        "The login page just reloads.",
        "I never shared my password with anyone.",
    ),
    "technical": (
        "I already tried restarting it.",
        "A factory reset did not help.",
        "It worked fine for the first month.",
        "I tried another power outlet.",
        "The status light is orange.",
        "I updated the app to the latest version.",
    ),
    "refund": (
        "It is still in the original packaging.",
        "I've only used it once.",
        "I printed the return label already.",
        "I'd prefer the money back on my original card.",
        "The return form on your site did not work.",
    ),
    "other": (
        "I saw it recommended by a friend.",
        "I couldn't find this in the FAQ.",
        "I read about it in a magazine.",
        "My sister has one too.",
        "I looked on your website first.",
    ),
}
"""Optional second sentence that adds category-specific colour without changing the label."""

URGENCY: dict[str, tuple[str, ...]] = {
    "low": (
        "No rush on this.",
        "Not urgent, whenever you get a chance.",
        "Low priority, just curious.",
        "Take your time, it's not a big deal.",
        "No hurry at all.",
        "This can wait, whenever is convenient.",
    ),
    "medium": (
        "",
        "",
        "",
        "Could you look into this?",
        "I'd appreciate a reply in the next few days.",
        "Please get back to me this week.",
        "Let me know what you find.",
    ),
    "high": (
        "Please prioritize this, it's really frustrating.",
        "I need this sorted soon, it's been a week already.",
        "This is the third time I'm writing, please fix it quickly.",
        "I need an answer by tomorrow.",
        "Please escalate this, I'm very unhappy.",
        "I need this resolved fast.",
    ),
    "urgent": (
        "URGENT, please help!",
        "This is an emergency.",
        "I need this fixed immediately.",
        "My business depends on this, please help right now.",
        "Please handle this ASAP, I can't wait any longer.",
        "This is urgent, I need it today.",
    ),
}
"""Phrases that set the priority; ``medium`` tickets often carry none."""

ORDER_SENTENCES = (
    "My order number is {order}.",
    "Order: {order}",
    "order id {order}",
    "It was order {order}.",
    "The order was {order}.",
    "Ref: {order}.",
    "(order {order})",
    "Order number {order}, if that helps.",
    "I ordered it under {order}.",
)
"""Ways a ticket gives its order id."""

NO_ORDER_SENTENCES = (
    "",
    "",
    "",
    "I don't have the order number at hand.",
    "I lost the order confirmation email.",
    "Not sure what the order number was.",
)
"""What a ticket without an order id says about it, if anything."""

ORDER_ID_CHANCE_OF_NULL = {
    "billing": 0.2,
    "shipping": 0.15,
    "account": 0.6,
    "technical": 0.45,
    "refund": 0.2,
    "other": 0.7,
}
"""Chance that a ticket of each category gives no order id."""

GREETINGS = (
    "",
    "",
    "Hi,",
    "Hello,",
    "Hey there,",
    "Good morning,",
    "Dear support,",
    "hi team,",
    "Hello support team,",
    "To whom it may concern,",
    "Hiya,",
    "Good evening,",
)
"""Openings of a ticket; empty means none."""

NAMES = ("Maria", "Tom", "Aisha", "Lukas", "Priya", "Sam", "Chen", "Olga", "Diego", "Fatima", "Ben")
"""First names for sign-offs."""

SIGN_OFFS = (
    "",
    "",
    "Thanks",
    "Thanks, {name}",
    "Cheers, {name}",
    "Regards, {name}",
    "Best, {name}",
    "thx",
    "Thank you in advance.",
    "Kind regards, {name}",
    "- {name}",
)
"""Closings of a ticket; empty means none."""

FILLERS = (
    "I bought it as a birthday present for my son.",
    "I've been a customer for {years} years.",
    "My zip code is {zip}.",
    "I'm writing this from my work laptop.",
    "The weather here has been awful lately, by the way.",
    "I really like your newsletter.",
    "You can call me on 555-01{two} if needed.",
    "We have two cats, in case that matters.",
    "I live in a small flat on the third floor.",
    "Sorry for my english, it is not my first language.",
    "I got it during the spring sale.",
    "My brother recommended your shop.",
    "I'm on the night shift so email is best.",
)
"""Irrelevant details that carry no label information."""

_TYPO_MIN_WORD = 4


def _typo(word: str, rng: random.Random) -> str:
    """Return ``word`` with one realistic slip: swapped, dropped or doubled letter."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _add_typo(template: str, rng: random.Random) -> str:
    """Misspell one plain word of ``template``; placeholders and punctuation stay intact."""
    words = template.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= _TYPO_MIN_WORD and w.isalpha()]
    if candidates:
        i = rng.choice(candidates)
        words[i] = _typo(words[i], rng)
    return " ".join(words)


def _order_id(rng: random.Random) -> str:
    """A fresh ``ORD-#####`` id."""
    return f"ORD-{rng.randrange(10_000, 100_000)}"


def _ticket_text(
    category: str, priority: str, product: str, order_id: str | None, rng: random.Random
) -> str:
    """Write one ticket's user message for the given labels."""
    # Templates are kept unformatted until typos are in, so names and ids are never misspelt.
    templates = [rng.choice(ISSUES[category])]
    if rng.random() < 0.55:
        templates.append(rng.choice(DETAILS[category]))
    templates += [rng.choice(FILLERS) for _ in range(rng.choice((0, 0, 1, 1, 1, 2)))]
    for _ in range(rng.choice((0, 0, 0, 0, 0, 1, 1, 1, 2, 2))):
        i = rng.randrange(len(templates))
        templates[i] = _add_typo(templates[i], rng)
    values = {
        "product": product,
        "code": rng.randrange(10, 100),
        "digits": rng.randrange(1000, 10_000),
        "years": rng.randrange(2, 15),
        "zip": rng.randrange(10_000, 100_000),
        "two": rng.randrange(10, 100),
    }
    body = [t.format(**values) for t in templates]
    if order_id is not None:
        body.append(rng.choice(ORDER_SENTENCES).format(order=order_id))
    else:
        body.append(rng.choice(NO_ORDER_SENTENCES))
    body = [s for s in body if s]
    # The issue stays first most of the time, as in real tickets; the rest is shuffled.
    rest = body[1:]
    rng.shuffle(rest)
    body = [body[0], *rest] if rng.random() < 0.7 else rest[:1] + [body[0]] + rest[1:]

    urgency = rng.choice(URGENCY[priority])
    if urgency:
        if rng.random() < 0.35:
            body.insert(0, urgency)
        else:
            body.append(urgency)

    greeting = rng.choice(GREETINGS)
    sign_off = rng.choice(SIGN_OFFS).format(name=rng.choice(NAMES))
    text = " ".join(body)
    if greeting:
        text = greeting + rng.choice((" ", "\n")) + text
    if sign_off:
        text = text + rng.choice((" ", "\n")) + sign_off

    case = rng.random()
    if case < 0.12:
        text = text.lower()
    elif case < 0.16:
        text = text.upper()
    # Order ids are copied from a confirmation email, so they keep their case.
    return re.sub(r"ord-(\d{5})", r"ORD-\1", text, flags=re.IGNORECASE)


def _balanced(values: tuple[str, ...], n: int, rng: random.Random) -> list[str]:
    """``n`` values cycling through ``values`` evenly, in random order."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def answer_json(category: str, priority: str, product: str, order_id: str | None) -> str:
    """The assistant answer: one line of JSON with the keys in :data:`KEYS` order."""
    return json.dumps(
        {"category": category, "priority": priority, "product": product, "order_id": order_id},
        ensure_ascii=False,
    )


def generate_rows(n: int, seed: int, exclude: Iterable[str] = ()) -> list[dict]:
    """Make ``n`` rows in ``messages`` format from ``seed``.

    Categories, priorities and products are balanced across the rows. No two rows share a
    user message, and no row's user message is in ``exclude`` (the training tickets, when
    making the held-out split).
    """
    rng = random.Random(seed)
    categories = _balanced(CATEGORIES, n, rng)
    priorities = _balanced(PRIORITIES, n, rng)
    products = _balanced(PRODUCTS, n, rng)
    seen = set(exclude)
    rows = []
    for category, priority, product in zip(categories, priorities, products):
        while True:
            order_id = None if rng.random() < ORDER_ID_CHANCE_OF_NULL[category] else _order_id(rng)
            text = _ticket_text(category, priority, product, order_id, rng)
            if text not in seen:
                break
        seen.add(text)
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": text},
                    {
                        "role": "assistant",
                        "content": answer_json(category, priority, product, order_id),
                    },
                ]
            }
        )
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    """Write ``rows`` as UTF-8 JSON lines with ``\\n`` endings, so the bytes never vary."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """Write both splits into ``out_dir`` (default: :data:`SAMPLES_DIR`); return their paths."""
    out = Path(out_dir) if out_dir is not None else SAMPLES_DIR
    out.mkdir(parents=True, exist_ok=True)
    train = generate_rows(TRAIN_ROWS, TRAIN_SEED)
    train_texts = {row["messages"][1]["content"] for row in train}
    heldout = generate_rows(HELDOUT_ROWS, HELDOUT_SEED, exclude=train_texts)
    train_path, heldout_path = out / TRAIN_FILE, out / HELDOUT_FILE
    write_jsonl(train, train_path)
    write_jsonl(heldout, heldout_path)
    return train_path, heldout_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="where to write (default: next to this file)"
    )
    for written in main(parser.parse_args().out_dir):
        sys.stdout.write(f"{written}\n")
