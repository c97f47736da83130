"""Deterministic synthetic demo data in the *shapes* of the eight GLUE tasks (NOT GLUE).

Why: the harness must run end to end (tests, CI, smoke runs) without network or the
real GLUE files. Each task gets a tiny rule-based world whose labels are an exact,
noise-free function of the text. Half of every split is "easy" (decidable from a
surface cue: one sentiment word, identical sentences, a "never" in the hypothesis)
and half is "hard" (needs composition: negation, "but"-contrast, word-order/role swaps,
double negation, long-distance agreement, scope). Early-exit methods should be able
to leave early on the easy half and need depth on the hard half; ``Example.kind``
records which is which ("easy:<cue>" / "hard:<phenomenon>").

Everything is drawn from ``random.Random`` streams seeded by a SHA-256 of
(task, seed, split), so the output is identical across Python runs and platforms.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from typing import Callable

from dpbert.data import Example
from dpbert.tasks import TaskSpec, get_task

__all__ = ["make_synthetic", "SYNTHETIC_VOCAB"]

# --------------------------------------------------------------------------- word pools
# Sentiment (SST-2).
_POS = ("good", "great", "excellent", "wonderful", "brilliant", "lovely", "superb", "enjoyable", "charming", "delightful")
_NEG = ("bad", "terrible", "awful", "boring", "dull", "poor", "horrible", "weak", "tedious", "clumsy")
_TOPIC = ("movie", "film", "story", "plot", "acting", "music", "ending", "script", "cast", "dialogue")
_ADV = ("really", "truly", "quite", "very", "rather", "simply")

# Event worlds: two "genres" for training / matched dev, two held out for MNLI mismatched.
_GENRES: dict[str, tuple[str, ...]] = {
    "animals": ("dog", "cat", "horse", "bird", "fox", "rabbit", "mouse", "goat"),
    "people": ("boy", "girl", "teacher", "doctor", "farmer", "child", "nurse", "baker"),
    "office": ("manager", "client", "clerk", "lawyer", "engineer", "banker", "editor", "agent"),
    "sea": ("sailor", "captain", "pilot", "diver", "fisher", "whale", "shark", "seal"),
}
_PLACES_MAIN = ("park", "garden", "market", "school", "river", "forest", "field", "village")
_PLACES_HELD_OUT = ("office", "harbor", "bank", "airport", "hotel", "station", "island", "beach")
_TIMES = ("at night", "on monday", "in the morning", "after lunch")
# Regular verbs: (base, past, past participle).
_VERBS = (
    ("chase", "chased", "chased"), ("help", "helped", "helped"), ("follow", "followed", "followed"),
    ("call", "called", "called"), ("push", "pushed", "pushed"), ("visit", "visited", "visited"),
    ("watch", "watched", "watched"), ("pull", "pulled", "pulled"),
)
# CoLA agreement: singular/plural nouns and predicate adjectives.
_SG_PL = (("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"),
          ("boy", "boys"), ("girl", "girls"), ("teacher", "teachers"), ("farmer", "farmers"))
_PRED_ADJ = ("happy", "tired", "small", "big", "old", "young", "hungry", "quiet")
# QQP topics.
_SUBJECTS = ("math", "music", "cooking", "chess", "french", "physics", "painting", "swimming", "coding", "history")

# Literal words used by the templates below (kept in sync by tests/test_synthetic.py).
_TEMPLATE_WORDS = (
    "the this i it is was not never but although that of think thought would call can say true "
    "and by in at on after did has ever slept are near very who what where why how best way "
    "to learn should before all"
).split()

MAIN_GENRES = ("animals", "people")
HELD_OUT_GENRES = ("office", "sea")


def _build_vocab() -> tuple[str, ...]:
    words: set[str] = set(_TEMPLATE_WORDS)
    for pool in (_POS, _NEG, _TOPIC, _ADV, _PLACES_MAIN, _PLACES_HELD_OUT, _PRED_ADJ, _SUBJECTS):
        words.update(pool)
    for nouns in _GENRES.values():
        words.update(nouns)
    for t in _TIMES:
        words.update(t.split())
    for v in _VERBS:
        words.update(v)
    for sg, pl in _SG_PL:
        words.update((sg, pl))
    return tuple(sorted(words))


SYNTHETIC_VOCAB: tuple[str, ...] = _build_vocab()
"""Every whitespace token the generator can emit (lowercase, no punctuation)."""


# --------------------------------------------------------------------------- helpers
def _stream(task: str, seed: int, split: str) -> random.Random:
    """Independent, platform-stable RNG per (task, seed, split)."""
    digest = hashlib.sha256(f"dpbert-synthetic|{task}|{seed}|{split}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _two(rng: random.Random, pool: tuple[str, ...]) -> tuple[str, str]:
    a, b = rng.sample(pool, 2)
    return a, b


def _other(rng: random.Random, pool: tuple[str, ...], *exclude: str | None) -> str:
    return rng.choice([w for w in pool if w not in exclude])


@dataclass(frozen=True)
class _Event:
    """A transitive event 'subj verb obj [at place] [time]', possibly negated ("never")."""

    subj: str
    verb: int  # index into _VERBS
    obj: str
    place: str | None = None
    time: str | None = None
    neg: bool = False


def _say(ev: _Event, *, passive: bool = False, prep: str = "in") -> str:
    """Realise an event as a sentence; active/passive are exact paraphrases."""
    _, past, pp = _VERBS[ev.verb]
    neg = "never " if ev.neg else ""
    if passive:
        core = f"the {ev.obj} was {neg}{pp} by the {ev.subj}"
    else:
        core = f"the {ev.subj} {neg}{past} the {ev.obj}"
    if ev.place:
        core += f" {prep} the {ev.place}"
    if ev.time:
        core += f" {ev.time}"
    return core


def _random_event(rng: random.Random, nouns: tuple[str, ...], places: tuple[str, ...],
                  p_place: float = 0.6, p_time: float = 0.3) -> _Event:
    s, o = _two(rng, nouns)
    return _Event(s, rng.randrange(len(_VERBS)), o,
                  rng.choice(places) if rng.random() < p_place else None,
                  rng.choice(_TIMES) if rng.random() < p_time else None)


# --------------------------------------------------------------------------- NLI world
ENT, NEU, CON = 0, 1, 2


def _nli_label(p: _Event, h: _Event) -> int:
    """Exact entailment semantics of the event world (premise p, hypothesis h).

    Different participants/verb -> neutral (unrelated). Positive premise: a positive
    hypothesis is entailed if each of its attributes is unspecified or equal, contradicted
    if one conflicts (same event, other place/time), else neutral; a negative hypothesis
    contradicts when its attributes are all implied by p. Negative premise ("never ...
    [attrs]"): a positive hypothesis at least as specific contradicts it; a negative one
    at least as specific is entailed; otherwise neutral.
    """
    if (p.subj, p.verb, p.obj) != (h.subj, h.verb, h.obj):
        return NEU
    pa, ha = (p.place, p.time), (h.place, h.time)
    h_implied = all(hv is None or hv == pv for pv, hv in zip(pa, ha))
    h_conflict = any(hv is not None and pv is not None and hv != pv for pv, hv in zip(pa, ha))
    h_covers_p = all(pv is None or pv == hv for pv, hv in zip(pa, ha))
    if not p.neg:
        if not h.neg:
            return ENT if h_implied else (CON if h_conflict else NEU)
        return CON if h_implied else NEU
    if not h.neg:
        return CON if h_covers_p else NEU
    return ENT if h_covers_p else NEU


def _nli_pair(rng: random.Random, label: int, easy: bool, nouns: tuple[str, ...],
              places: tuple[str, ...], prep: str) -> tuple[str, str, str]:
    """Build (premise, hypothesis, kind) whose computed label equals ``label``."""
    base = _random_event(rng, nouns, places, p_place=1.0, p_time=0.4)
    voice_p = False
    voice_h = False
    if easy:
        if label == ENT:  # hypothesis = premise minus attributes; no "never"
            h = replace(base, place=base.place if rng.random() < 0.3 else None, time=None)
            p, kind = base, "easy:subset"
        elif label == CON:  # the hypothesis says "never"
            h = replace(base, neg=True, place=base.place if rng.random() < 0.5 else None, time=None)
            p, kind = base, "easy:never_cue"
        else:  # hypothesis brings in a new participant or a new attribute
            p = replace(base, time=None)
            if rng.random() < 0.5:
                h = replace(p, subj=_other(rng, nouns, p.subj, p.obj), place=None)
                kind = "easy:new_entity"
            else:
                h = replace(p, time=rng.choice(_TIMES), place=None)
                kind = "easy:new_attribute"
    else:
        choice = rng.random() < 0.5
        if label == ENT:
            if choice:  # passive paraphrase
                p, h, voice_h, kind = base, replace(base, time=None), True, "hard:passive"
            else:  # "never X" entails "never X in place": extra words, yet entailed
                p = replace(base, neg=True, place=None, time=None)
                h = replace(base, neg=True, time=None)
                kind = "hard:negation_scope"
        elif label == CON:
            if choice:  # same event, conflicting place; looks like "new info"
                p = replace(base, time=None)
                h = replace(p, place=_other(rng, places, p.place))
                voice_h = rng.random() < 0.5
                kind = "hard:conflict"
            else:  # the "never" is in the premise, the hypothesis is positive
                p = replace(base, neg=True, place=None, time=None)
                h = replace(base, neg=False, time=None)
                voice_h = rng.random() < 0.5
                kind = "hard:negated_premise"
        else:
            if choice:  # "never X in park" does not settle "X" (could be elsewhere)
                p = replace(base, neg=True, time=None)
                h = replace(base, neg=False, place=None, time=None)
                kind = "hard:negation_scope"
            else:  # a negated hypothesis about another place is compatible
                p = replace(base, time=None)
                h = replace(p, neg=True, place=_other(rng, places, p.place))
                kind = "hard:other_place_negated"
            voice_p = rng.random() < 0.3
    got = _nli_label(p, h)
    assert got == label, (p, h, got, label)  # construction and semantics must agree
    return _say(p, passive=voice_p, prep=prep), _say(h, passive=voice_h, prep=prep), kind


# --------------------------------------------------------------------------- generators
# Each generator: (rng, label, easy, split) -> (text_a, text_b | None, kind).
_Gen = Callable[[random.Random, int, bool, str], tuple[str, "str | None", str]]


def _gen_sst2(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, None, str]:
    """Sentiment: easy = one cue word; hard = negation, 'but'-contrast, double negation."""
    pol = {1: _POS, 0: _NEG}
    n, n2 = _two(rng, _TOPIC)
    adv = rng.choice(_ADV)
    if easy:
        adj = rng.choice(pol[label])
        templates = (
            f"the {n} was {adj}",
            f"i thought the {n} was {adv} {adj}",
            f"this {n} is {adj}",
            f"all in all the {n} of this {n2} was {adv} {adj}",
            f"the {n} was {adj} and the {n2} was {rng.choice(pol[label])}",
        )
        return rng.choice(templates), None, "easy:sentiment_word"
    kind = rng.choice(("negation", "contrast", "double_negation"))
    if kind == "negation":
        adj = rng.choice(pol[1 - label])
        text = rng.choice((f"the {n} was not {adj}", f"i would not call the {n} {adj}",
                           f"i did not think the {n} was {adv} {adj}"))
    elif kind == "contrast":
        first, last = rng.choice(pol[1 - label]), rng.choice(pol[label])
        text = rng.choice((f"the {n} was {first} but the {n2} was {adv} {last}",
                           f"although the {n} of this {n2} was {first} it was {adv} {last}",
                           f"the {n} was {adv} {first} but it was {last}"))
    else:
        adj = rng.choice(pol[label])
        text = rng.choice((f"it is not true that the {n} was not {adj}",
                           f"i can not say the {n} was not {adv} {adj}"))
    return text, None, f"hard:{kind}"


def _gen_cola(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, None, str]:
    """Acceptability: easy = local word-order damage; hard = agreement across an
    attractor, or 'ever' licensed only by a 'not' in the right clause."""
    (sg, pl), (sg2, pl2) = rng.sample(_SG_PL, 2)
    _, past, pp = rng.choice(_VERBS)
    adj = rng.choice(_PRED_ADJ)
    place = rng.choice(_PLACES_MAIN)
    tail = f" in the {place}" if rng.random() < 0.5 else ""
    if easy:
        good = f"the {sg} {past} the {sg2}{tail}".split()
        if label == 1:
            return " ".join(good), None, "easy:grammatical"
        how = rng.randrange(3)
        if how == 0:  # doubled determiner
            bad = ["the"] + good
        elif how == 1:  # verb moved to the front
            bad = [good[2]] + good[:2] + good[3:]
        else:  # dangling determiner at the end
            bad = good + ["the"]
        return " ".join(bad), None, "easy:word_order"
    if rng.random() < 0.5:  # subject-verb agreement with an intervening noun of the other number
        subj_plural = rng.random() < 0.5
        head, attractor = (pl, sg2) if subj_plural else (sg, pl2)
        correct = "are" if subj_plural else "is"
        wrong = "is" if subj_plural else "are"
        cop = correct if label == 1 else wrong
        text = rng.choice((f"the {head} near the {attractor} {cop} {adj}",
                           f"the {head} that the {attractor} {past} {cop} very {adj}"))
        return text, None, "hard:agreement"
    # NPI 'ever' must be licensed by 'not' in the main clause, not inside the relative clause.
    if label == 1:
        text = rng.choice((f"the {sg} has not ever {pp} the {sg2}",
                           f"the {sg} that has slept has not ever {pp} the {sg2}"))
    else:
        text = rng.choice((f"the {sg} has ever {pp} the {sg2}",
                           f"the {sg} that has not slept has ever {pp} the {sg2}"))
    return text, None, "hard:npi_licensing"


def _gen_mrpc(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, str]:
    """Paraphrase: easy = identical vs unrelated; hard = active/passive vs role swap/negation."""
    nouns = _GENRES["animals"] + _GENRES["people"]
    ev = _random_event(rng, nouns, _PLACES_MAIN)
    a = _say(ev)
    if easy:
        if label == 1:
            return a, a, "easy:identical"
        s, o = rng.sample([w for w in nouns if w not in (ev.subj, ev.obj)], 2)
        other = _Event(s, (ev.verb + rng.randrange(1, len(_VERBS))) % len(_VERBS), o,
                       _other(rng, _PLACES_MAIN, ev.place), ev.time)
        return a, _say(other, passive=rng.random() < 0.3), "easy:unrelated"
    if label == 1:
        return a, _say(ev, passive=True), "hard:passive_paraphrase"
    how = rng.randrange(3)
    if how == 0:
        return a, _say(replace(ev, subj=ev.obj, obj=ev.subj)), "hard:role_swap"
    if how == 1:
        return a, _say(replace(ev, subj=ev.obj, obj=ev.subj), passive=True), "hard:role_swap_passive"
    return a, _say(replace(ev, neg=True), passive=rng.random() < 0.5), "hard:negation"


def _gen_qqp(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, str]:
    """Duplicate questions: easy = identical vs different topic; hard = reworded
    duplicates vs same-words-different-meaning (swapped roles/order, other intent)."""
    nouns = _GENRES["animals"] + _GENRES["people"]
    t1, t2 = _two(rng, _SUBJECTS)
    s, o = _two(rng, nouns)
    base, past, pp = rng.choice(_VERBS)
    ask_event = rng.random() < 0.5
    q_topic = rng.choice((f"how can i learn {t1}", f"how can i learn {t1} before {t2}"))
    q_event = f"why did the {s} {base} the {o}"
    q = q_event if ask_event else q_topic
    if easy:
        if label == 1:
            return q, q, "easy:identical"
        s2, o2 = rng.sample([w for w in nouns if w not in (s, o)], 2)
        t3 = _other(rng, _SUBJECTS, t1, t2)
        other = f"why did the {s2} {base} the {o2}" if rng.random() < 0.5 else f"how can i learn {t3}"
        return q, other, "easy:unrelated"
    if label == 1:
        if ask_event:
            return q, f"why was the {o} {pp} by the {s}", "hard:passive_paraphrase"
        return q, q.replace("how can i learn", "what is the best way to learn"), "hard:reworded"
    if ask_event:
        return q, f"why did the {o} {base} the {s}", "hard:role_swap"
    if " before " in q:
        return q, f"how can i learn {t2} before {t1}", "hard:order_swap"
    return q, f"why should i learn {t1}", "hard:other_intent"


def _gen_qnli(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, str]:
    """Does the sentence answer the question? 0 = entailment (answers), 1 = not."""
    nouns = _GENRES["animals"] + _GENRES["people"]
    ev = _random_event(rng, nouns, _PLACES_MAIN, p_place=1.0, p_time=0.3)
    base, past, _ = _VERBS[ev.verb]
    qtype = rng.choice(("who", "what", "where"))
    q = {"who": f"who {past} the {ev.obj}",
         "what": f"what did the {ev.subj} {base}",
         "where": f"where did the {ev.subj} {base} the {ev.obj}"}[qtype]
    if easy:
        if label == 0:
            return q, _say(ev), "easy:same_event"
        s, o = rng.sample([w for w in nouns if w not in (ev.subj, ev.obj)], 2)
        other = _Event(s, (ev.verb + rng.randrange(1, len(_VERBS))) % len(_VERBS), o, ev.place, ev.time)
        return q, _say(other, passive=rng.random() < 0.3), "easy:unrelated"
    if label == 0:
        return q, _say(ev, passive=True), "hard:passive"
    how = rng.randrange(3) if qtype == "where" else rng.randrange(2)
    if how == 0:
        return q, _say(replace(ev, subj=ev.obj, obj=ev.subj), passive=rng.random() < 0.5), "hard:role_swap"
    if how == 1:
        return q, _say(replace(ev, neg=True), passive=rng.random() < 0.5), "hard:negation"
    return q, _say(replace(ev, place=None), passive=rng.random() < 0.5), "hard:missing_place"


def _gen_stsb(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, str]:
    """Similarity = 5 * (# of the 4 role slots subject/verb/object/place shared) / 4.

    Easy pairs are both active, so word overlap tracks the score; hard pairs use the
    passive (overlap preserved, order changed) or swap subject and object (same words,
    lower score). ``label`` is ignored: the score is computed from the sentences.
    """
    nouns = _GENRES["animals"] + _GENRES["people"]
    a = _random_event(rng, nouns, _PLACES_MAIN, p_place=1.0, p_time=0.4)
    swap = (not easy) and rng.random() < 0.5
    slots = ["subj", "verb", "obj", "place"]
    if swap:
        k = rng.randrange(3)  # shared among verb/place only
        keep = set(rng.sample(["verb", "place"], k))
        s2, o2 = a.obj, a.subj
    else:
        k = rng.randrange(5)
        keep = set(rng.sample(slots, k))
        s2 = a.subj if "subj" in keep else _other(rng, nouns, a.subj, a.obj)
        o2 = a.obj if "obj" in keep else _other(rng, nouns, a.subj, a.obj, s2)
    v2 = a.verb if "verb" in keep else (a.verb + rng.randrange(1, len(_VERBS))) % len(_VERBS)
    p2 = a.place if "place" in keep else _other(rng, _PLACES_MAIN, a.place)
    b = _Event(s2, v2, o2, p2, a.time)  # time is never a slot: it only varies length
    shared = sum((a.subj == b.subj, a.verb == b.verb, a.obj == b.obj, a.place == b.place))
    assert shared == k, (a, b, k)
    kind = "easy:overlap" if easy else ("hard:role_swap" if swap else "hard:passive")
    text_b = _say(b, passive=(not easy and not swap) or (swap and rng.random() < 0.5))
    return _say(a), text_b, kind + f"|{5.0 * shared / 4.0}"


def _gen_nli_factory(genres_for: Callable[[str], tuple[str, ...]], two_way: bool) -> _Gen:
    def gen(rng: random.Random, label: int, easy: bool, split: str) -> tuple[str, str, str]:
        genre = rng.choice(genres_for(split))
        held_out = genre in HELD_OUT_GENRES
        places = _PLACES_HELD_OUT if held_out else _PLACES_MAIN
        prep = "at" if held_out else "in"
        nli_label = label
        if two_way:  # RTE: 0 entailment, 1 not_entailment (neutral or contradiction)
            nli_label = ENT if label == 0 else rng.choice((NEU, CON))
        a, b, kind = _nli_pair(rng, nli_label, easy, _GENRES[genre], places, prep)
        return a, b, kind
    return gen


def _mnli_genres(split: str) -> tuple[str, ...]:
    """dev_mismatched / test_mismatched use held-out genres (nouns, places, 'at')."""
    return HELD_OUT_GENRES if split.endswith("mismatched") else MAIN_GENRES


_GENERATORS: dict[str, _Gen] = {
    "CoLA": _gen_cola,
    "SST-2": _gen_sst2,
    "MRPC": _gen_mrpc,
    "QQP": _gen_qqp,
    "QNLI": _gen_qnli,
    "STS-B": _gen_stsb,
    "MNLI": _gen_nli_factory(_mnli_genres, two_way=False),
    "RTE": _gen_nli_factory(lambda split: MAIN_GENRES, two_way=True),
}


def _make_split(spec: TaskSpec, seed: int, split: str, n: int) -> list[Example]:
    """n examples with classes and easy/hard exactly balanced, then shuffled."""
    rng = _stream(spec.name, seed, split)
    n_classes = max(spec.num_labels, 1)
    plan = [(i % 2 == 0, (i // 2) % n_classes) for i in range(n)]
    rng.shuffle(plan)
    gen = _GENERATORS[spec.name]
    out: list[Example] = []
    for i, (easy, label) in enumerate(plan):
        a, b, kind = gen(rng, label, easy, split)
        value: float | int = label
        if spec.is_regression:
            kind, score = kind.split("|")
            value = float(score)
        out.append(Example(f"synthetic-{spec.name}-{split}-{i}", a, b, value, kind))
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
