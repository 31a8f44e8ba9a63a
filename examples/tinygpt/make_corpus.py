"""Write corpus.txt: simple English stories from a small seeded grammar.

The corpus ships with the example (pinned by its SHA-256 in prepare.py), so nothing is
downloaded; this script says where it came from and makes it again, byte for byte:

    python make_corpus.py            # writes corpus.txt next to this file
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

SEED = 1729
TARGET_BYTES = 320_000

GIRLS = "Anna Lily Mia Rosa Ella Nora Ruby Ivy Clara Maya Lucy Hazel Iris Zoe Greta Wren".split()
BOYS = "Tom Ben Leo Max Sam Finn Oscar Jack Hugo Eli Theo Milo Noah Otto Felix Jonah".split()
ANIMALS = "cat dog rabbit fox bear mouse owl duck frog goat pig hedgehog squirrel badger deer horse".split()
ADJECTIVES = "little brave shy curious clever kind sleepy happy grumpy quiet gentle busy silly proud tiny bold".split()
COLOURS = "red blue green yellow purple silver golden orange brown white pink grey".split()
THINGS = "ball kite hat box key shell cup drum boat book lamp ring bell map coin flute basket blanket".split()
PLACES = [
    "a small house by the river", "a cottage at the edge of the wood", "a farm on the hill",
    "a busy town near the sea", "a tall tree in the park", "a quiet village in the valley",
    "a cabin in the mountains", "a garden behind the bakery", "an old mill by the pond",
]
SPOTS = "the old bridge|the big rock|the garden gate|the bottom of the hill|the edge of the pond|the market|the school|the barn".split("|")
TIMES = "morning|afternoon|evening|sunny day|rainy day|windy morning|cold night|warm summer day".split("|")
WEATHER = ["the sun was shining", "it was raining softly", "the wind was blowing", "snow was falling", "the sky was grey"]
FEELINGS = "happy|sad|worried|excited|scared|surprised|tired|proud".split("|")
LIKES = "to paint|to sing|to climb trees|to read books|to bake bread|to build towers|to run fast|to look at the stars".split("|")
PROBLEMS = [
    "it was stuck in a tree", "it had fallen into the water", "it was broken in two",
    "it was too heavy to carry", "a strong wind blew it away", "it was hidden under the leaves",
]
FIXES = [
    "used a long stick to get it down", "asked for help and pulled it out together",
    "found some string and tied it back up", "waited for the wind to stop and chased it",
    "carried it home one small step at a time", "looked under every leaf until it was found",
]
LESSONS = [
    "friends can do more together than alone", "it is good to be patient",
    "being kind makes everyone happy", "it is fine to ask for help", "small steps can go a long way",
    "sharing is better than keeping", "trying again is the bravest thing",
]
SAYINGS = ["Look at this!", "What a day!", "Oh no!", "Can you help me?", "We did it!", "Thank you so much!"]


def person(rng: random.Random, avoid: str = "") -> tuple[str, str, str]:
    """A name with its subject and object pronouns."""
    while True:
        girl = rng.random() < 0.5
        name = rng.choice(GIRLS if girl else BOYS)
        if name != avoid:
            return (name, "she", "her") if girl else (name, "he", "him")


def a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def story(rng: random.Random) -> str:
    name, he, him = person(rng)
    friend, fhe, _ = person(rng, avoid=name)
    animal, fanimal = rng.choice(ANIMALS), rng.choice(ANIMALS)
    colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
    his = "her" if he == "she" else "his"
    title = f"{name} and the {colour.capitalize()} {thing.capitalize()}"
    lines = [
        f"Once upon a time, there was {a(rng.choice(ADJECTIVES))} {animal} named {name}. "
        f"{name} lived in {rng.choice(PLACES)}. {he.capitalize()} liked {rng.choice(LIKES)}.",
        f"One {rng.choice(TIMES)}, {rng.choice(WEATHER)}. {name} went to {rng.choice(SPOTS)} "
        f"and found {a(colour)} {thing}. \"{rng.choice(SAYINGS)}\" said {name}. "
        f"{he.capitalize()} felt very {rng.choice(FEELINGS)}.",
        f"But {rng.choice(PROBLEMS)}. {name} did not know what to do. Then {friend} the "
        f"{fanimal} came by. {friend} was {rng.choice(ADJECTIVES)} and {rng.choice(ADJECTIVES)}. "
        f"\"I will help you,\" said {friend}. So {fhe} and {name} {rng.choice(FIXES)}.",
    ]
    if rng.random() < 0.4:
        other = rng.choice(ANIMALS)
        lines.append(
            f"On the way home they met {a(rng.choice(ADJECTIVES))} {other}. \"Where did you find that "
            f"{thing}?\" asked the {other}. \"Near {rng.choice(SPOTS)},\" said {name}, and {he} smiled."
        )
    if rng.random() < 0.5:
        lines.append(
            f"After that, {name} and {friend} played with the {colour} {thing} until the sun went down. "
            f"{friend} laughed and {name} laughed too."
        )
    lines.append(
        f"In the end, {name} took the {thing} home and gave {friend} a big hug. "
        f"{name} learned that {rng.choice(LESSONS)}. It made {him} feel {rng.choice(FEELINGS)}, "
        f"and {his} {rng.choice(['heart', 'day', 'home'])} was full."
    )
    return title + "\n\n" + "\n".join(lines) + "\n"


def make(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    rng = random.Random(seed)
    stories: list[str] = []
    size = 0
    while size < target_bytes:
        stories.append(story(rng))
        size += len(stories[-1]) + 1
    return "\n".join(stories)


if __name__ == "__main__":
    text = make()
    out = Path(__file__).resolve().parent / "corpus.txt"
    out.write_text(text, encoding="ascii", newline="\n")
    print(f"{out}: {len(text)} bytes, sha256 {hashlib.sha256(text.encode('ascii')).hexdigest()}")
