"""What the person reads aloud during a camera take: lines written for this project.

Together the lines hold every English consonant at the lips, teeth, tongue tip and back of the
mouth (p b m, f v, th, t d s z n l, sh ch j zh, k g ng, w r y h) and the vowels from closed to
open and rounded (ee, i, e, a, ah, aw, oh, oo, u, and the glides ai, ow, oi), so the take
shows the mouth in most of its shapes. Pauses (mouth closed, breathing) are part of the script:
the model must also learn this face's closed, still mouth. Each line is shown for the time it
takes to read at an easy pace (`SYLLABLES_PER_S`); the script repeats if the take is longer.
"""

from __future__ import annotations

from dataclasses import dataclass

SYLLABLES_PER_S = 3.2  # an easy reading pace (conversation runs at 4-5)
PAUSE = ""  # a line with no words: stay silent, mouth closed

LINES: tuple[str, ...] = (
    "Hello, this is my own voice, recorded for a model of my face.",
    "Bob moves a big blue map past five vivid violet vans.",
    PAUSE,
    "Thin threads of thick thyme smell of the earth, through and through.",
    "She chose a sheep, a judge, a beige chair and a cheap gem.",
    "Kick the gate, go back, and ring the long gong again.",
    PAUSE,
    "Why would your yellow rowboat wait here while we row away?",
    "Eat it, get it, catch it, watch it, caught it, coat it, cut it, boot it.",
    "Lazy zebras doze in the sun; sizzling sauces sit near the stove.",
    PAUSE,
    "Oh, how loud the crowd was, out on the brown road at noon!",
    "Noisy boys enjoy a toy; my eyes may rise to find the sky.",
    "Numbers now: one, two, three, four, five, six, seven, eight, nine, ten.",
    PAUSE,
    "Please look at the camera, breathe, and smile a little at the end.",
)


def syllables(text: str) -> int:
    """A rough count: groups of vowels in each word (at least one per word)."""
    count = 0
    for word in text.lower().split():
        letters = [c for c in word if c.isalpha()]
        groups = sum(
            1 for i, c in enumerate(letters) if c in "aeiouy" and (i == 0 or letters[i - 1] not in "aeiouy")
        )
        if len(letters) > 2 and letters[-1] == "e" and groups > 1:
            groups -= 1  # a silent final e
        count += max(1, groups)
    return count


@dataclass(frozen=True)
class Cue:
    index: int  # position in the whole take (counts repeats)
    text: str  # PAUSE for a pause
    start_s: float
    end_s: float

    @property
    def is_pause(self) -> bool:
        return self.text == PAUSE

    def shown(self) -> str:
        return "(pause: stay silent, lips closed)" if self.is_pause else f'read: "{self.text}"'


class Script:
    """The cue showing at each moment of a take."""

    def __init__(self, lines: tuple[str, ...] = LINES, pause_s: float = 2.0, gap_s: float = 0.6) -> None:
        self.lines = lines
        durations = [pause_s if t == PAUSE else syllables(t) / SYLLABLES_PER_S + gap_s for t in lines]
        self.starts = [sum(durations[:i]) for i in range(len(lines))]
        self.durations = durations
        self.length_s = sum(durations)

    def cue_at(self, t_s: float) -> Cue:
        turn, within = divmod(max(t_s, 0.0), self.length_s)
        i = max(k for k, start in enumerate(self.starts) if start <= within)
        begin = turn * self.length_s + self.starts[i]
        return Cue(int(turn) * len(self.lines) + i, self.lines[i], begin, begin + self.durations[i])
