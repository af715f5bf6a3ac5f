"""Generate the bundled general probe set: varied instructions that have nothing to do with a
fine-tuning task, for measuring what a fine-tune costs the model's general ability.

Five kinds, equally many of each: ``writing`` (short texts, rewrites, summaries), ``reasoning``
(arithmetic word problems, sequences, simple logic), ``facts`` (short general knowledge),
``code`` (small functions, reading code, SQL) and ``formats`` (answers in a required shape:
JSON, one word, a numbered list, yes/no). Most ask for a short answer, so that a small model's
answer usually ends within the probe's cap on new tokens.

Each row is one user turn in ``messages`` format, with no answer: the base model's own answers
are generated once per model (:mod:`core.forgetting`). Rows follow each other kind by kind
(writing, reasoning, facts, code, formats, writing...), so any first ``N`` rows are balanced.

The output is deterministic: ``python -m core.samples.general`` rewrites
``general_prompts.jsonl`` byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
"""Folder of the committed sample files (this module's folder)."""
GENERAL_FILE = "general_prompts.jsonl"
"""File name of the probe set."""
PER_KIND = 60
"""Prompts of each kind."""
SEED = 2025_21
"""Seed of the generator's random stream."""
KINDS = ("writing", "reasoning", "facts", "code", "formats")
"""The kinds of prompt, in the order rows cycle through them."""

TOPICS = (
    "a rainy morning", "a lost umbrella", "the first day of school", "a lighthouse keeper",
    "a city garden", "an old bicycle", "learning to swim", "a night train", "a bakery at dawn",
    "a mountain village", "a friendly robot", "the last day of summer", "a library cat",
    "a power cut", "moving to a new town", "a snowstorm", "a street musician", "a picnic",
)
PRODUCTS = (
    "reusable water bottle", "folding chair", "desk lamp", "pair of hiking boots",
    "noise-cancelling headphones", "cast-iron pan", "backpack", "wall clock", "houseplant",
    "electric toothbrush",
)
CASUAL = (
    "hey, can u send me the report asap?",
    "sorry I'm late, the bus was a total mess",
    "the meeting got moved, no idea why lol",
    "we're out of coffee again, someone fix it",
    "thx for the help yesterday, u saved me",
    "can't make it tonight, something came up",
    "the printer is broken. again.",
    "gonna need a couple more days on this one",
)
PARAGRAPHS = (
    "Bees visit flowers to collect nectar and pollen. As they move from flower to flower, they "
    "carry pollen with them, which helps plants produce seeds and fruit.",
    "The town council voted to close the main street to cars on Sundays. Shop owners hope more "
    "people will walk through the centre, while some residents worry about parking.",
    "Regular sleep helps the body recover and the brain store memories. Adults who sleep less "
    "than six hours a night often find it harder to concentrate.",
    "The museum's new exhibition shows tools used by farmers two hundred years ago, from wooden "
    "ploughs to hand-made baskets, with short films explaining how each was used.",
    "Solar panels turn sunlight into electricity. Their price has fallen quickly over the last "
    "decade, so many households now put them on their roofs.",
    "The football match was delayed by heavy rain. When it finally started, the home team scored "
    "twice in the first ten minutes and held on to win.",
)
WRITING_KINDS = (
    "a two-sentence story about {topic}",
    "a haiku about {topic}",
    "a short diary entry about {topic}",
    "the opening line of a novel about {topic}",
    "a four-line poem about {topic}",
)
OCCASIONS = (
    "a thank-you note to a neighbour who watered my plants",
    "a short apology to a friend for missing their birthday",
    "an invitation to a small dinner party on Saturday",
    "a polite message asking a colleague to review a document",
    "a congratulations message for a friend's new job",
    "a note to a landlord about a leaking tap",
    "a short welcome message for a new team member",
    "a reminder to a club that the meeting starts at 7 pm",
)


def _writing(rng: random.Random) -> str:
    pick = rng.randrange(6)
    if pick == 0:
        return f"Write {rng.choice(WRITING_KINDS).format(topic=rng.choice(TOPICS))}."
    if pick == 1:
        return (f"Write a one-sentence product description for a "
                f"{rng.choice(PRODUCTS)}.")
    if pick == 2:
        return f"Rewrite this message in a polite, formal tone: \"{rng.choice(CASUAL)}\""
    if pick == 3:
        return f"Summarise this in one sentence: {rng.choice(PARAGRAPHS)}"
    if pick == 4:
        return f"Write {rng.choice(OCCASIONS)}. Keep it under 40 words."
    return f"Suggest a title for a short story about {rng.choice(TOPICS)}."


NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi",
         "Lena", "Marco", "Nia", "Omar", "Priya")
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "stamps", "books", "shells")
CATEGORIES_LOGIC = (
    ("birds", "animals", "a robin"), ("roses", "flowers", "this plant"),
    ("squares", "rectangles", "this shape"), ("violins", "instruments", "this object"),
    ("trout", "fish", "this animal"), ("oaks", "trees", "the tree in the yard"),
)


def _reasoning(rng: random.Random) -> str:
    pick = rng.randrange(8)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randrange(12, 60), rng.randrange(2, 11)
    if pick == 0:
        return (f"{name} has {a} {item} and gives {b} to a friend. How many {item} does "
                f"{name} have left? Answer with the number.")
    if pick == 1:
        return (f"A box holds {b} {item}. How many {item} are in {a} boxes? Show the "
                "calculation in one line.")
    if pick == 2:
        start, step = rng.randrange(1, 20), rng.randrange(2, 9)
        seq = ", ".join(str(start + step * i) for i in range(5))
        return f"What number comes next in the sequence {seq}? Explain briefly."
    if pick == 3:
        hour, hours = rng.randrange(6, 14), rng.randrange(2, 9)
        return (f"A train leaves at {hour}:00 and the trip takes {hours} hours. At what time "
                "does it arrive?")
    if pick == 4:
        x, y = rng.randrange(100, 999), rng.randrange(100, 999)
        return f"Which is larger, {x} or {y}? Answer in one sentence."
    if pick == 5:
        kind, group, thing = rng.choice(CATEGORIES_LOGIC)
        return (f"All {kind} are {group}. {thing[0].upper() + thing[1:]} is one of the {kind}. "
                f"Is {thing} one of the {group}? Answer yes or no, then give the reason.")
    if pick == 6:
        price, count = rng.randrange(2, 20), rng.randrange(2, 9)
        return (f"One notebook costs {price} dollars. How much do {count} notebooks cost, and "
                f"how much change is left from {price * count + rng.randrange(1, 30)} dollars?")
    n = rng.randrange(10, 200)
    return f"Is {n} an even or an odd number? Explain in one sentence."


COUNTRIES = ("France", "Japan", "Brazil", "Canada", "Egypt", "Kenya", "Italy", "Australia",
             "Mexico", "Norway", "India", "Spain", "Germany", "Argentina", "Thailand")
CONCEPTS = ("photosynthesis", "gravity", "inflation", "a prime number", "an atom", "DNA",
            "a volcano", "democracy", "the water cycle", "a vaccine", "an eclipse", "erosion",
            "a recession", "evaporation", "a galaxy", "friction", "a glacier", "an ecosystem")
ANIMALS = ("a spider", "an insect", "a horse", "a bird", "an octopus", "a dog", "a crab",
           "a starfish")
FACT_QUESTIONS = (
    "What is the largest planet in the solar system?",
    "What is the boiling point of water at sea level in degrees Celsius?",
    "How many days are there in a leap year?",
    "Which ocean is the largest?",
    "What gas do plants take in from the air?",
    "How many continents are there?",
    "What is the chemical symbol for gold?",
    "What is the freezing point of water in Fahrenheit?",
    "Which planet is known as the Red Planet?",
    "How many minutes are in three hours?",
    "What is the tallest mountain on Earth?",
    "What is the longest river in Africa?",
    "How many sides does a hexagon have?",
    "What is the main language spoken in Brazil?",
    "What do bees make?",
    "What is the hardest natural material?",
    "Who painted the Mona Lisa?",
    "What is the smallest prime number?",
    "Which organ pumps blood through the body?",
    "What is the largest desert in the world?",
    "How many strings does a standard guitar have?",
    "What is the speed of light, roughly, in kilometres per second?",
    "Which metal is liquid at room temperature?",
    "What is the square root of 81?",
)


def _facts(rng: random.Random) -> str:
    pick = rng.randrange(4)
    if pick == 0:
        return f"What is the capital of {rng.choice(COUNTRIES)}?"
    if pick == 1:
        return f"In one sentence, what is {rng.choice(CONCEPTS)}?"
    if pick == 2:
        return f"How many legs does {rng.choice(ANIMALS)} have?"
    return rng.choice(FACT_QUESTIONS)


CODE_TASKS = (
    "reverses a string", "checks whether a number is prime", "returns the largest number in a "
    "list", "counts the vowels in a string", "computes the factorial of n", "removes duplicates "
    "from a list while keeping order", "returns the sum of the even numbers in a list",
    "checks whether a word is a palindrome", "converts Celsius to Fahrenheit", "returns the "
    "n-th Fibonacci number", "merges two dictionaries", "counts how often each word appears in "
    "a sentence",
)
SNIPPETS = (
    "print(len([1, 2, 3]) * 2)",
    "x = 5\nx += 3\nprint(x)",
    "print('abc'.upper())",
    "print(sum(range(4)))",
    "print([n * n for n in range(3)])",
    "print('a-b-c'.split('-'))",
    "print(10 // 3, 10 % 3)",
    "print(sorted([3, 1, 2], reverse=True))",
)
PROGRAMMING_TERMS = ("a loop", "recursion", "a variable", "an API", "a function", "a class",
                     "a database index", "version control", "a compiler", "an exception")
TABLES = (("orders", "total"), ("employees", "salary"), ("products", "price"),
          ("students", "grade"))
LANGUAGES = ("Python", "JavaScript")


def _code(rng: random.Random) -> str:
    pick = rng.randrange(4)
    if pick == 0:
        return f"Write a {rng.choice(LANGUAGES)} function that {rng.choice(CODE_TASKS)}."
    if pick == 1:
        return f"What does this Python code print?\n\n{rng.choice(SNIPPETS)}"
    if pick == 2:
        return f"Explain in one sentence what {rng.choice(PROGRAMMING_TERMS)} is in programming."
    table, column = rng.choice(TABLES)
    return (f"Write an SQL query that selects every row of the table {table} where {column} "
            f"is greater than {rng.randrange(10, 500)}.")


THINGS = ("fruits", "colours", "European countries", "musical instruments", "kitchen tools",
          "sports", "planets", "vegetables", "board games", "ocean animals")
OBJECTS = (("a banana", "colour"), ("the sky on a clear day", "colour"), ("snow", "colour"),
           ("grass", "colour"), ("a lemon", "colour"), ("coal", "colour"))
YES_NO = ("Is the sun a star?", "Can penguins fly?", "Is water wet?", "Is 7 greater than 12?",
          "Do fish breathe with gills?", "Is Paris in Spain?", "Is a tomato a fruit?",
          "Does ice float on water?")
PHRASES = ("good morning", "thank you very much", "where is the station?", "I like tea",
           "see you tomorrow", "the cat is sleeping")
WORDS = ("zebra", "apple", "mango", "kite", "river", "lemon", "bridge", "cloud", "garden")
PEOPLE = ("Maria", "Tom", "Yuki", "Sam", "Leila", "Noah")


def _formats(rng: random.Random) -> str:
    pick = rng.randrange(8)
    if pick == 0:
        return f"List three {rng.choice(THINGS)} as a JSON array of strings. Reply with the JSON only."
    if pick == 1:
        thing, what = rng.choice(OBJECTS)
        return f"Answer with exactly one word: what {what} is {thing}?"
    if pick == 2:
        return f"Give {rng.randrange(3, 6)} {rng.choice(THINGS)} as a numbered list, nothing else."
    if pick == 3:
        return f"Reply with yes or no only: {rng.choice(YES_NO)}"
    if pick == 4:
        return (f"Return a JSON object with the keys name and age for a person called "
                f"{rng.choice(PEOPLE)} who is {rng.randrange(18, 80)} years old.")
    if pick == 5:
        language = rng.choice(("French", "Spanish", "German"))
        return f"Translate \"{rng.choice(PHRASES)}\" into {language}. Reply with the translation only."
    if pick == 6:
        words = rng.sample(WORDS, 4)
        return f"Put these words in alphabetical order, separated by commas: {', '.join(words)}."
    return f"Write the word \"{rng.choice(WORDS)}\" backwards, in capital letters, and nothing else."


MAKERS: dict[str, Callable[[random.Random], str]] = {
    "writing": _writing, "reasoning": _reasoning, "facts": _facts, "code": _code,
    "formats": _formats,
}
"""One prompt of each kind from the random stream."""


def generate_prompts(per_kind: int = PER_KIND, seed: int = SEED) -> list[dict]:
    """``per_kind`` distinct prompts of each kind, cycling through :data:`KINDS`, as rows of
    ``{"messages": [{"role": "user", "content": ...}]}``."""
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    seen: set[str] = set()
    for kind in KINDS:
        made: list[str] = []
        for _ in range(per_kind * 200):  # bounded: a kind with too few variants fails loudly
            text = MAKERS[kind](rng)
            if text not in seen:
                seen.add(text)
                made.append(text)
                if len(made) == per_kind:
                    break
        if len(made) < per_kind:
            raise RuntimeError(f"only {len(made)} distinct {kind} prompts; add variants")
        by_kind[kind] = made
    return [{"messages": [{"role": "user", "content": by_kind[kind][i]}]}
            for i in range(per_kind) for kind in KINDS]


def main(out_dir: Path | str | None = None) -> Path:
    """Write the probe set into ``out_dir`` (default: :data:`SAMPLES_DIR`); return its path."""
    out = Path(out_dir) if out_dir is not None else SAMPLES_DIR
    out.mkdir(parents=True, exist_ok=True)
    path = out / GENERAL_FILE
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in generate_prompts():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where to write (default: next to this file)")
    sys.stdout.write(f"{main(parser.parse_args().out_dir)}\n")
