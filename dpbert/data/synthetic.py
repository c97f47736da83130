"""Deterministic synthetic demo data in the *shapes* of the eight GLUE tasks (NOT GLUE).

Why: the harness must run end to end (tests, CI, the demo) without network or the real GLUE
files, and input-adaptive depth needs data whose difficulty is graded by depth. Every task is a
tiny rule-based world whose labels are an exact, noise-free function of the text
(:func:`oracle_label` re-derives every label from the words alone; the tests hold it equal to the
generator's). Each example is either

* **easy** (``kind`` "easy:<cue>"): one surface token decides it -- a sentiment or state word, an
  unrelated property ("red"), "nobody", a hedge ("maybe"), a doubled determiner -- and nothing
  in the sentence changes what that token means; or
* **hard** (``kind`` "hard:<phenomenon><n>"): the same cue is there, but n = 1-3 nested operators act
  on it, so the cue alone is right only by luck: negations that flip it and stack ("it is not true
  that the box is not open"), a negation in the *other* sentence of a pair that flips the relation
  between the two, a "but" whose second clause wins, an "ever" that needs a licensing "not" above
  it (not one inside a relative clause), a verb that agrees with a head noun across attractors.

**The calculus behind the pair tasks.** A *claim* is "the <thing> is <state>" with a state word
from an antonym pair (open/closed, full/empty, ...). Its truth is the word's polarity (first member
+), flipped by a "not" after the copula and by each negating wrapper ("i do not think", "it is not
true that"); the other wrappers ("i think", "they say") keep it. Every flip is exactly one "not", so
a claim's truth is ``polarity(word) XOR (number of "not" % 2)`` (:func:`claim_truth`). The first
sentence of a pair always uses the + word, so in an easy pair the second sentence's word (or one
"not" in it) decides the label. This convention keeps the pair relation learnable by a model trained
from scratch on a few hundred examples (a pure cross-sentence XOR of two state words is not, in the
demo's budget: measured), while a negation in the first sentence still changes the answer.

Task table (``TASK_MIX``: share of easy examples per split, exact up to rounding; classes balanced):

=======  ====  ================================================================================
task     easy  easy cue / hard phenomena (n = nesting depth)
=======  ====  ================================================================================
SST-2    0.50  the sentiment word / negations 1-3 deep ("i do not think the film was not good"),
               a "but"-contrast whose second clause (perhaps negated) decides
CoLA     0.50  doubled or dangling "the", doubled copula / "ever" licensed by a "not" after "has"
               or a negating wrapper above it, not by one in a relative clause (1-3 levels);
               agreement of the copula with the head noun across 1-2 attractors
MNLI     0.67  neutral: an unrelated property ("the box is red"), always easy; entailment vs
               contradiction: the hypothesis' word, or one "not" in it / negations 1-3 in premise
               and hypothesis. dev_mismatched: 0.55 easy, see below
QNLI     0.50  "the <thing> is in the <place>" answers, "nobody knows where" does not /
               negations 1-2 of the answer
MRPC     0.50  the second sentence's word / negations 1-3 across the two sentences
QQP      0.65  the second question's word / negations 1-3 across the two questions
RTE      0.50  the hypothesis' word, an unrelated property / negations 1-3 in either sentence
STS-B    0.60  score 0-5 = 3 x (the claims agree) + 2 / 1 / 0 for a second sentence hedged with
               nothing / "probably" / "maybe" (:func:`stsb_score`); agreement as in MRPC
=======  ====  ================================================================================

MNLI's mismatched splits (``dev_mismatched``, ``test_mismatched``) are a shifted *distribution over
the same vocabulary*, every word of which is in MNLI's training split: other templates ("was" for
"is" 7 times in 10 instead of 2, a place phrase 7 times in 10 instead of 1, the wrappers "it is not
true that" / "they say" 9 times in 10 instead of 1) and another mix (55% easy, deeper nesting).

The demo's BERT-base learns this (``python -m dpbert.tools.synthetic_check``, docs/architecture.md, "The demo's data"):
its score is far above the majority class on every task, the easy examples stay right when it is
cut to its first 6 of 12 layers (``bert_cut``), and the hard ones fall towards chance.

Everything is drawn from ``random.Random`` streams seeded by a SHA-256 of (task, seed, split),
so the output is identical across Python runs and platforms; dev never depends on ``n_train``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise

from dpbert.data.examples import Example
from dpbert.data.tasks import TaskSpec, get_task

__all__ = ["ALWAYS_EASY", "SYNTHETIC_VOCAB", "TASK_MIX", "claim_truth", "easy_share", "make_synthetic", "oracle_label",
           "stsb_score"]

# --------------------------------------------------------------------------- word pools
# Sentiment (SST-2): polarity 1 = positive.
_POS = ("good", "great", "excellent", "wonderful", "brilliant", "lovely", "superb", "charming")
_NEG = ("bad", "terrible", "awful", "boring", "dull", "poor", "horrible", "weak")
_TOPIC = ("movie", "film", "story", "plot", "acting", "music", "ending", "script")
_ADV = ("really", "truly", "quite", "very")

# States (the pair tasks): antonym pairs, the first member has polarity 1.
_STATES = (("open", "closed"), ("full", "empty"), ("clean", "dirty"), ("hot", "cold"), ("wet", "dry"),
           ("new", "old"))
_THINGS = ("box", "cup", "door", "car", "bag", "jar", "lamp", "bottle")
_PLACES = ("kitchen", "garden", "hall", "shop", "office", "garage")
_NEUTRAL_PROPS = ("big", "small", "red", "heavy")  # MNLI/RTE: what a claim about a state says nothing about

# CoLA: singular/plural things and participles for the "ever" sentences.
_PLURAL = {"box": "boxes", "cup": "cups", "door": "doors", "car": "cars", "bag": "bags", "jar": "jars",
           "lamp": "lamps", "bottle": "bottles"}
_PARTICIPLES = ("been", "looked", "seemed")

# Operators. Each negating one holds exactly one negator (NEGATORS); the keeping ones none. The first of
# each pair is the common one; MNLI's mismatched split prefers the second.
NEGATORS = ("not",)
FLIP_WRAPPERS = ("i do not think", "it is not true that")
KEEP_WRAPPERS = ("i think", "they say")
P_FLIP_WRAPPER = 0.75
HEDGE = "maybe"
_QUESTION_WRAPPERS = {"i do not think": "why do you not think", "it is not true that": "why is it not true that",
                      "i think": "why do you think", "they say": "why do they say"}
"""QQP: a wrapper as the outermost operator of a question (the same negators)."""

_TEMPLATE_WORDS = ("the", "is", "are", "was", "not", "but", "in", "near", "behind", "nobody", "knows", "where", "can",
                   "find", "i")

TASK_MIX: dict[str, dict[str, float]] = {
    "SST-2": {"*": 0.5}, "CoLA": {"*": 0.5}, "QNLI": {"*": 0.5}, "MRPC": {"*": 0.5}, "QQP": {"*": 0.65},
    "RTE": {"*": 0.5}, "STS-B": {"*": 0.6},
    "MNLI": {"*": 0.67, "dev_mismatched": 0.55, "test_mismatched": 0.55},
}
"""Share of easy examples per task and split ("*": every other split); exact up to rounding."""


def easy_share(task: str, split: str) -> float:
    mix = TASK_MIX[get_task(task).name]
    return mix.get(split, mix["*"])


def _build_vocab() -> tuple[str, ...]:
    words: set[str] = set(_TEMPLATE_WORDS) | {HEDGE, "probably"}
    for pool in (_POS, _NEG, _TOPIC, _ADV, _THINGS, _PLACES, _NEUTRAL_PROPS, _PARTICIPLES, tuple(_PLURAL.values())):
        words.update(pool)
    for pair in _STATES:
        words.update(pair)
    for phrase in (*FLIP_WRAPPERS, *KEEP_WRAPPERS, *_QUESTION_WRAPPERS.values(), "has ever are",
                   "that is", "how come", "this i found", "all in all"):
        words.update(phrase.split())
    return tuple(sorted(words))


SYNTHETIC_VOCAB: tuple[str, ...] = _build_vocab()
"""Every whitespace token the generator can emit (lowercase, no punctuation)."""


# --------------------------------------------------------------------------- helpers
def _stream(task: str, seed: int, split: str) -> random.Random:
    """Independent, platform-stable RNG per (task, seed, split)."""
    digest = hashlib.sha256(f"dpbert-synthetic-v2|{task}|{seed}|{split}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _is_mismatched(split: str) -> bool:
    return split.endswith("mismatched")


@dataclass(frozen=True)
class _Claim:
    """'the <thing> is [not] <word>' under wrappers (outermost first); ``truth`` is of "<thing> is <pos word>"."""

    thing: str
    pair: int
    word_pol: int  # 1: the first (+) word of the pair
    local_not: bool = False
    wrappers: tuple[str, ...] = ()
    place: str | None = None
    copula: str = "is"

    @property
    def flips(self) -> int:
        return int(self.local_not) + sum(w in FLIP_WRAPPERS for w in self.wrappers)

    @property
    def truth(self) -> int:
        return self.word_pol ^ (self.flips % 2)

    @property
    def n_ops(self) -> int:
        return int(self.local_not) + len(self.wrappers)

    def text(self) -> str:
        word = _STATES[self.pair][0 if self.word_pol else 1]
        where = f" in the {self.place}" if self.place else ""
        s = f"the {self.thing}{where} {self.copula} {'not ' if self.local_not else ''}{word}"
        for w in reversed(self.wrappers):
            s = f"{w} {s}"
        return s


def _operators(rng: random.Random, n: int, shifted: bool = False) -> tuple[bool, tuple[str, ...]]:
    """n = 1-3 operators on one sentence: n = 1 is a local "not" or one wrapper (1/2 each); n >= 2 is a
    local "not" and n - 1 wrappers. A wrapper negates with probability ``P_FLIP_WRAPPER``, else it keeps
    the claim; 9 times in 10 it is the first of its kind ("i do not think", "i think"), the second when
    ``shifted`` (MNLI mismatched: "it is not true that", "they say")."""
    if n <= 0:
        return False, ()
    local = n >= 2 or rng.random() < 0.5
    wraps = []
    for _ in range(n - int(local)):
        kind = FLIP_WRAPPERS if rng.random() < P_FLIP_WRAPPER else KEEP_WRAPPERS
        wraps.append(kind[int(shifted) if rng.random() < 0.9 else 1 - int(shifted)])
    return local, tuple(wraps)


def claim_truth(text: str) -> int:
    """Truth of a claim sentence from its words alone: polarity of its state word, flipped by each negator."""
    words = text.split()
    pol = next((1 if w == p[0] else 0 for w in words for p in _STATES if w in p), None)
    if pol is None:
        raise ValueError(f"no state word in {text!r}")
    return pol ^ (_negations(words) % 2)


def _negations(words: list[str]) -> int:
    return sum(w in NEGATORS for w in words)


def _sentiment_truth(text: str) -> int:
    words = text.split()
    pol = next((1 if w in _POS else 0 for w in words if w in _POS or w in _NEG), None)
    if pol is None:
        raise ValueError(f"no sentiment word in {text!r}")
    return pol ^ (_negations(words) % 2)


# --------------------------------------------------------------------------- the oracle
def oracle_label(task: str, text_a: str, text_b: str | None) -> float | int:
    """The label of a synthetic example derived from its text alone, by the rules of the module
    docstring (what a perfect reader of the demo's world answers). Used by the tests against the
    generator, and by anyone who wants to know what an example means."""
    name = get_task(task).name
    a = text_a.split()
    if name == "SST-2":  # the clause after "but" decides; each negator flips the sentiment word
        clause = " ".join(a[a.index("but") + 1:]) if "but" in a else text_a
        return _sentiment_truth(clause)
    if name == "CoLA":
        return int(_cola_acceptable(a))
    assert text_b is not None, f"{name} is a pair task"
    b = text_b.split()
    if name == "QNLI":  # 0 = the sentence says where the thing is (an even number of negators)
        if "nobody" in b:
            return 1
        return 0 if _negations(b) % 2 == 0 else 1
    if name in ("MNLI", "RTE"):
        if b[-1] in _NEUTRAL_PROPS:
            nli = 1  # neutral
        else:
            nli = 0 if claim_truth(text_a) == claim_truth(text_b) else 2
        return nli if name == "MNLI" else int(nli != 0)
    if name in ("MRPC", "QQP"):
        return int(claim_truth(text_a) == claim_truth(text_b))
    if name == "STS-B":
        return stsb_score(claim_truth(text_a) == claim_truth(text_b), {"probably": 1, "maybe": 2}.get(b[0], 0))
    raise ValueError(f"no oracle for {name}")


def _cola_acceptable(w: list[str]) -> bool:
    """Acceptable iff no local error (a doubled "the" or copula, a dangling "the"), the copula agrees
    with the head noun (the subject's first noun, not the nearest one), and every "ever" is licensed: by
    a "not" after "has" in its own clause, or a negating wrapper above it ("i do not think ..."); a "not"
    inside the subject's relative clause ("that is not ...") does not license it."""
    if w[-1] == "the" or any(x == y and x in ("the", "is", "are") for x, y in pairwise(w)):
        return False
    if ("near" in w or "behind" in w) and ("is" in w or "are" in w):  # the head noun is the second word
        return (w[1] in _PLURAL.values()) == ("are" in w)
    if "ever" not in w:
        return True
    i = w.index("ever")
    if w[i - 1] == "not" and w[i - 2] == "has":
        return True
    text = " ".join(w)
    return any(f in text for f in FLIP_WRAPPERS)


# --------------------------------------------------------------------------- generators
# Each generator: (rng, stratum, easy, split) -> (text_a, text_b | None, label, kind); ``stratum``
# is the class to produce (STS-B: which of the 6 combinations of its score components).
_Gen = Callable[[random.Random, int, bool, str], tuple[str, "str | None", "float | int", str]]


def _hard_depth(rng: random.Random, split: str) -> int:
    """Nesting depth of a hard example: 1-3 uniformly (mismatched: 2 or 3, 3 twice as often)."""
    return rng.choice((2, 3, 3)) if _is_mismatched(split) else rng.choice((1, 2, 3))


def _gen_sst2(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, None, int, str]:
    """Sentiment: easy = one sentiment word; hard = nested negation or a "but"-contrast."""
    pol = {1: _POS, 0: _NEG}
    t, t2 = rng.sample(_TOPIC, 2)
    adv = f"{rng.choice(_ADV)} " if rng.random() < 0.4 else ""
    if easy:
        adj = rng.choice(pol[label])
        text = rng.choice((f"the {t} was {adv}{adj}", f"this {t} is {adv}{adj}", f"i found the {t} {adv}{adj}",
                           f"all in all the {t} was {adv}{adj}"))
        return text, None, label, "easy:sentiment_word"
    if rng.random() < 0.25:  # contrast: the first clause has the other polarity; the second may hold a "not"
        neg = rng.random() < 0.5
        last = rng.choice(pol[label ^ neg])
        text = f"the {t} was {rng.choice(pol[1 - label])} but the {t2} was {'not ' if neg else ''}{adv}{last}"
        return text, None, label, f"hard:contrast{1 + neg}"
    n = rng.choice((1, 2, 3))
    local, wraps = _operators(rng, n)
    flips = int(local) + sum(w in FLIP_WRAPPERS for w in wraps)
    adj = rng.choice(pol[label ^ (flips % 2)])
    s = f"the {t} was {'not ' if local else ''}{adv}{adj}"
    for w in reversed(wraps):
        s = f"{w} {s}"
    return s, None, label, f"hard:negation{n}"


def _gen_cola(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, None, int, str]:
    """Acceptability (1 = acceptable): easy = a local error or none; hard = agreement across attractors,
    or "ever" and its licensor under 0-2 wrappers."""
    thing, _ = rng.sample(_THINGS, 2)
    pair = _STATES[rng.randrange(len(_STATES))]
    if easy:
        plural = rng.random() < 0.3
        subj = _PLURAL[thing] if plural else thing
        good = f"the {subj} {'are' if plural else 'is'} {rng.choice(pair)}".split()
        if rng.random() < 0.5:
            good = f"the {subj} in the {rng.choice(_PLACES)} {'are' if plural else 'is'} {rng.choice(pair)}".split()
        if label == 1:
            return " ".join(good), None, 1, "easy:grammatical"
        how = rng.randrange(3)  # a doubled determiner, a dangling one, a doubled copula
        cop = good.index("is" if "is" in good else "are")
        bad = (["the"] + good if how == 0 else good + ["the"] if how == 1
               else good[: cop + 1] + good[cop:])
        return " ".join(bad), None, 0, "easy:local_error"
    if rng.random() < 0.5:  # agreement across 1-2 attractors of the other number
        n = rng.choice((1, 2))
        plural = rng.random() < 0.5
        subj = f"the {_PLURAL[thing] if plural else thing}"
        for noun in rng.sample([t for t in _THINGS if t != thing], n):
            subj += f" {rng.choice(('near', 'behind'))} the {noun if plural else _PLURAL[noun]}"
        verb_plural = plural if label == 1 else not plural
        return f"{subj} {'are' if verb_plural else 'is'} {rng.choice(pair)}", None, label, f"hard:agreement{n}"
    # "the <thing> [that is [not] <state>] has [not] ever <participle> <state>" under 0-2 wrappers
    n = rng.choice((1, 2, 3))
    rc = rng.random() < 0.5
    rc_not = rc and rng.random() < (0.7 if label == 0 else 0.4)  # the distractor "not" mostly in bad ones
    n_wraps = min(n - 1, 2)
    if label == 1:  # licensed: a "not" after "has", or a negating wrapper
        by_local = n_wraps == 0 or rng.random() < 0.5
        wraps = [rng.choice(KEEP_WRAPPERS + FLIP_WRAPPERS) for _ in range(n_wraps)]
        if not by_local:
            wraps[rng.randrange(n_wraps)] = rng.choice(FLIP_WRAPPERS)
        local = by_local
    else:
        wraps = [rng.choice(KEEP_WRAPPERS) for _ in range(n_wraps)]
        local = False
    subj = f"the {thing}" + (f" that is {'not ' if rc_not else ''}{rng.choice(pair)}" if rc else "")
    s = f"{subj} has {'not ' if local else ''}ever {rng.choice(_PARTICIPLES)} {rng.choice(_STATES[rng.randrange(6)])}"
    for w in reversed(wraps):
        s = f"{w} {s}"
    return s, None, label, f"hard:npi{n}"


def _weighted_sample(rng: random.Random, items: tuple[str, ...], weights: tuple[float, ...], k: int) -> set[str]:
    """k distinct items drawn with probability proportional to their weights (without replacement)."""
    items_left, w_left, out = list(items), list(weights), set()
    for _ in range(k):
        i = rng.choices(range(len(items_left)), weights=w_left)[0]
        out.add(items_left.pop(i))
        w_left.pop(i)
    return out


def _pair_claims(rng: random.Random, same: bool, easy: bool, split: str, *, place_p: float = 0.1,
                 copula: str = "is", shifted: bool = False, easy_not: bool = False,
                 ) -> tuple[_Claim, _Claim, int]:
    """(first, second, n_ops): two claims about one thing and one antonym pair whose truths are equal
    iff ``same``. The first uses the + word. Easy: no operators. Hard: n = 1-3 of the operators "not" in
    the first, "not" in the second, and one wrapper (on the second 7 times in 10)."""
    thing = rng.choice(_THINGS)
    pair = rng.randrange(len(_STATES))
    place = rng.choice(_PLACES) if rng.random() < place_p else None
    if easy and easy_not:  # the second restates the first, with a "not" when it contradicts it
        first = _Claim(thing, pair, 1, place=place, copula=copula)
        return first, _Claim(thing, pair, 1, not same, (), place if rng.random() < 0.5 else None, copula), 0
    n = 0 if easy else _hard_depth(rng, split)
    slots = _weighted_sample(rng, ("first_not", "second_not", "wrapper"), (0.25, 0.4, 0.35), n)
    loc1, loc2 = "first_not" in slots, "second_not" in slots
    w1: tuple[str, ...] = ()
    w2: tuple[str, ...] = ()
    if "wrapper" in slots:  # at most one wrapper a pair, on the second sentence 7 times in 10
        kind = FLIP_WRAPPERS if rng.random() < P_FLIP_WRAPPER else KEEP_WRAPPERS
        wrapper = (kind[int(shifted) if rng.random() < 0.9 else 1 - int(shifted)],)
        w1, w2 = ((), wrapper) if rng.random() < 0.7 else (wrapper, ())
    first = _Claim(thing, pair, 1, loc1, w1, place, copula)
    want = first.truth if same else 1 - first.truth
    flips2 = int(loc2) + sum(w in FLIP_WRAPPERS for w in w2)
    second = _Claim(thing, pair, want ^ (flips2 % 2), loc2, w2, place if rng.random() < 0.5 else None, copula)
    assert (first.truth == second.truth) == same
    return first, second, n


def _gen_nli_factory(three_way: bool) -> _Gen:
    """MNLI (0 entailment, 1 neutral, 2 contradiction) and RTE (0 entailment, 1 not_entailment)."""

    def gen(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, int, str]:
        mm = _is_mismatched(split)
        style = {"place_p": 0.7 if mm else 0.1, "copula": "was" if rng.random() < (0.7 if mm else 0.2) else "is",
                 "easy_not": three_way, "shifted": mm}
        # RTE's not_entailment: a contradiction, or (easy examples, half of them) a neutral pair
        nli = label if three_way else (0 if label == 0 else (1 if easy and rng.random() < 0.5 else 2))
        if nli == 1:  # neutral: the hypothesis states a property the premise says nothing about; that word
            # decides it whatever operators the pair has, so a neutral pair is always easy
            p, h, _ = _pair_claims(rng, True, rng.random() < 0.5, split, **style)
            hyp = h.text().rsplit(" ", 1)[0] + f" {rng.choice(_NEUTRAL_PROPS)}"
            return p.text(), hyp, label, "easy:other_property"
        p, h, n = _pair_claims(rng, nli == 0, easy, split, **style)
        return p.text(), h.text(), label, ("easy:hypothesis_word" if easy else f"hard:negation{n}")

    return gen


def _gen_qnli(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, int, str]:
    """0 = the sentence says where the thing is; 1 = it does not (nobody knows, or it is negated)."""
    thing, place = rng.choice(_THINGS), rng.choice(_PLACES)
    q = rng.choice((f"where is the {thing}", f"where can i find the {thing}"))
    if easy:
        if label == 0:
            return q, f"the {thing} is in the {place}", 0, "easy:place"
        return q, rng.choice((f"nobody knows where the {thing} is", f"i think nobody knows where the {thing} is")), \
            1, "easy:nobody"
    n = rng.choice((1, 2))
    for _ in range(100):  # the parity of the drawn operators must give the label
        local, wraps = _operators(rng, n)
        if (int(local) + sum(w in FLIP_WRAPPERS for w in wraps)) % 2 == label:
            break
    s = f"the {thing} is {'not ' if local else ''}in the {place}"
    for w in reversed(wraps):
        s = f"{w} {s}"
    return q, s, label, f"hard:negation{n}"


def _gen_mrpc(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, int, str]:
    """Paraphrase (1): both sentences make the same claim ("not closed" = "open")."""
    a, b, n = _pair_claims(rng, label == 1, easy, split)
    if easy:
        return a.text(), b.text(), label, "easy:second_word"
    return a.text(), b.text(), label, f"hard:negation{n}"


def _question(c: _Claim, rng: random.Random) -> str:
    """A question about a claim: 'why is the thing [not] <word>', or its outermost wrapper asked
    ('why do you not think that ...'); its negators are the claim's, so is its truth."""
    word = _STATES[c.pair][0 if c.word_pol else 1]
    inner = f"{'not ' if c.local_not else ''}{word}"
    if not c.wrappers:
        return rng.choice((f"why is the {c.thing} {inner}", f"how come the {c.thing} is {inner}"))
    s = f"the {c.thing} is {inner}"
    for w in reversed(c.wrappers[1:]):
        s = f"{w} {s}"
    return f"{_QUESTION_WRAPPERS[c.wrappers[0]]} {s}"


def _gen_qqp(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, int, str]:
    """Duplicate questions (1): both ask why the same claim holds."""
    a, b, n = _pair_claims(rng, label == 1, easy, split)
    qa, qb = _question(a, rng), _question(b, rng)
    return qa, qb, label, ("easy:second_word" if easy else f"hard:negation{n}")


_STSB_HEDGES = ("", "probably", "maybe")  # none, weak, strong: +2, +1, +0
_STSB_SCORES = tuple((agree, hedge) for agree in (1, 0) for hedge in range(len(_STSB_HEDGES)))


def stsb_score(agree: bool, hedge: int) -> float:
    """3 for two claims that agree (as in MRPC) + 2 / 1 / 0 for a second sentence not hedged / hedged
    with "probably" / with "maybe": the six strata are the scores 5, 4, 3 (agree) and 2, 1, 0."""
    return 3.0 * bool(agree) + (2 - hedge)


def _gen_stsb(rng: random.Random, stratum: int, easy: bool, split: str) -> tuple[str, str, float, str]:
    """Similarity 0-5 (:func:`stsb_score`): whether the claims agree, and how the second is hedged."""
    agree, hedge = _STSB_SCORES[stratum]
    a, b, n = _pair_claims(rng, bool(agree), easy, split)
    text_b = f"{_STSB_HEDGES[hedge]} {b.text()}".strip()
    return a.text(), text_b, stsb_score(agree, hedge), ("easy:second_word" if easy else f"hard:negation{n}")


_GENERATORS: dict[str, _Gen] = {
    "CoLA": _gen_cola,
    "SST-2": _gen_sst2,
    "MRPC": _gen_mrpc,
    "QQP": _gen_qqp,
    "QNLI": _gen_qnli,
    "STS-B": _gen_stsb,
    "MNLI": _gen_nli_factory(three_way=True),
    "RTE": _gen_nli_factory(three_way=False),
}


def _strata(spec: TaskSpec) -> int:
    return len(_STSB_SCORES) if spec.is_regression else spec.num_labels


ALWAYS_EASY: dict[str, tuple[int, ...]] = {"MNLI": (1,)}
"""Classes that are easy by construction (MNLI's neutral: one property word decides it)."""


def _plan(spec: TaskSpec, split: str, n: int) -> list[tuple[bool, int]]:
    """(easy, stratum) for n examples: strata (classes; STS-B: score strata) balanced, the split's easy
    share (rounded) overall, an always-easy class wholly easy and the rest of the easy quota spread evenly
    over the other strata."""
    k = _strata(spec)
    counts = [n // k + (s < n % k) for s in range(k)]
    forced = [s for s in range(k) if s in ALWAYS_EASY.get(spec.name, ())]
    free = [s for s in range(k) if s not in forced]
    quota = max(0, round(easy_share(spec.name, split) * n) - sum(counts[s] for s in forced))
    n_free = sum(counts[s] for s in free)
    easy = {s: counts[s] for s in forced}
    share = {s: quota * counts[s] / n_free if n_free else 0.0 for s in free}
    for s in free:
        easy[s] = min(counts[s], math.floor(share[s]))
    left = quota - sum(easy[s] for s in free)  # largest remainders first: the strata stay within one
    for s in sorted(free, key=lambda f: (easy[f] - share[f], f))[:max(0, left)]:
        easy[s] = min(counts[s], easy[s] + 1)
    return [(i < easy[s], s) for s in range(k) for i in range(counts[s])]


def _make_split(spec: TaskSpec, seed: int, split: str, n: int) -> list[Example]:
    """n examples planned by :func:`_plan`, shuffled, generated from the split's own stream."""
    rng = _stream(spec.name, seed, split)
    plan = _plan(spec, split, n)
    rng.shuffle(plan)
    gen = _GENERATORS[spec.name]
    out: list[Example] = []
    for i, (easy, stratum) in enumerate(plan):
        a, b, label, kind = gen(rng, stratum, easy, split)
        out.append(Example(f"synthetic-{spec.name}-{split}-{i}", a, b, float(label) if spec.is_regression else int(label),
                           kind))
    return out


def make_synthetic(task: str, seed: int, n_train: int, n_dev: int, *,
                   with_test: bool = False, n_test: int | None = None) -> dict[str, list[Example]]:
    """Synthetic splits for ``task``: "train", the task's dev splits, and (if asked)
    the test splits with hidden labels (-1, or nan for STS-B).

    Why separate streams per split: dev is not a prefix of train, and changing
    ``n_train`` never changes the dev set.
    """
    spec = get_task(task)
    if n_train < 0 or n_dev < 0:
        raise ValueError(f"n_train and n_dev must be >= 0, got {n_train}, {n_dev}")
    splits: dict[str, list[Example]] = {"train": _make_split(spec, seed, "train", n_train)}
    for split in spec.dev_splits:
        splits[split] = _make_split(spec, seed, split, n_dev)
    if with_test:
        hidden: float | int = math.nan if spec.is_regression else -1
        for split in spec.test_splits:
            exs = _make_split(spec, seed, split, n_dev if n_test is None else n_test)
            splits[split] = [replace(e, label=hidden) for e in exs]
    return splits
