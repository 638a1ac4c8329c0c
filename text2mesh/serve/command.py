"""One sentence to a job: "generate a red spiky vase", "generate an image of a sunset".

The word "generate" starts a job; the words after it are the prompt. A shipped mesh named in the
prompt (by its file name, or a common synonym: "person" for the human) is the mesh; a sentence
that asks for an image or a picture makes a picture instead, with "an image of" taken out of the
prompt. A sentence without the trigger word makes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRIGGER = "generate"
MAX_PROMPT = 300  # characters
SYNONYMS = {"human": ("human", "person", "man", "woman", "figure", "character"), "dog": ("dog", "puppy"),
            "vase": ("vase", "pot"), "sphere": ("sphere", "ball", "globe")}
_IMAGE = re.compile(r"^(?:an?\s+|the\s+)?(?:image|picture|painting|drawing|photo)\s+(?:of\s+)?", re.IGNORECASE)


class CommandError(ValueError):
    """A sentence that starts no job; the message says what to say instead."""


@dataclass(frozen=True)
class Command:
    """What a sentence asks for: a stylized ``mesh`` (a shipped mesh's name) or, with mesh None, a
    picture; ``prompt`` is the text target."""

    prompt: str
    mesh: str | None


def parse_command(text: str, meshes: list[str]) -> Command:
    """Read a sentence; ``meshes`` are the shipped meshes' names (file stems)."""
    words = re.findall(r"\S+", text.strip())
    lowered = [w.lower().strip(",.:;!?") for w in words]
    if TRIGGER not in lowered:
        raise CommandError(f'nothing to do: start with "{TRIGGER}", e.g. "{TRIGGER} a red vase" or '
                           f'"{TRIGGER} an image of a sunset"')
    prompt = " ".join(words[lowered.index(TRIGGER) + 1:]).strip(" ,.:;!?")
    if not prompt:
        raise CommandError(f'say what to {TRIGGER}, e.g. "{TRIGGER} a red vase"')
    if len(prompt) > MAX_PROMPT:
        raise CommandError(f"the prompt is {len(prompt)} characters; keep it under {MAX_PROMPT}")
    image = _IMAGE.match(prompt)
    if image:
        return Command(prompt[image.end():].strip() or prompt, None)
    said = set(re.findall(r"[a-z]+", prompt.lower()))
    for name in meshes:
        if said & set(SYNONYMS.get(name, (name,))):
            return Command(prompt, name)
    names = ", ".join(meshes)
    raise CommandError(f'which mesh? name one of the shipped meshes ({names}) or ask for "an image of ..."')
