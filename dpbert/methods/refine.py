"""Search a method's inference knob for operating points inside the speed-up window (pure functions).

The paper searches knob values "constrained to speed-ups between 1.30 and 1.96". A sweep first
scores the knob grid of the config; for a method whose knob is threshold-like (``Method.refinable``)
``search`` then scores new knob values, round by round, until the window (``selection.window``, on
the exact layer speed-up N / mean executed layers of the primary dev split) holds
``selection.min_points_in_window`` points of distinct speed-up for the variant, or until it is
clear that the knob cannot put more there. Each round:

* an interval between two adjacent scored knobs is *useful* when the speed-ups at its ends span
  part of the window that they do not already hold (one end on each side of the window, one end
  inside, or both inside with different speed-ups); new knobs go inside useful intervals: knobs
  whose speed-up the straight line between the ends puts evenly across that part of the window,
  the midpoint, and knobs evenly spaced over the interval (so that a step is narrowed like a
  bisection, whatever its shape), taken round-robin over the intervals up to a budget per round
  (where the ends straddle the whole window, line and evenly spaced knobs alternate);
* when no interval is useful and ``knob_range`` leaves room beyond the scored knobs, the range's
  end on the side that moves the speed-up towards the window (both sides when the data does not
  say) and the midpoint up to it are scored;
* the speed-up is "monotone-ish" in the knob, but the rounds do not rely on it: each interval is
  judged by its own two ends, so a non-monotone curve only means that more intervals are useful.
  Only the side to extend and ``unreachable`` read a trend (the end points' speed-ups).

It stops with a status string, one per variant (the sweep's ``refine_status`` column):

* ``ok: 4 points in window``: enough points;
* ``jump: speed-up jumps from 1.12 to 2.40 between knob 0.31 and 0.3101``: every useful interval
  is narrower than the knob tolerance (``knob_tolerance``; adjacent integers for an integer knob),
  so no knob value lies between them: the speed-up jumps over (part of) the window;
* ``unreachable: max speed-up 1.05 over the knob range [0, 1]`` (or ``min speed-up``): every
  scored speed-up is on one side of the window, the knob range's ends included (the grid's ends
  when the method gives no range);
* ``exhausted: 1 of 3 points in window; ...``: points inside, but no interval can add one of
  another speed-up;
* ``max rounds: 2 of 3 points in window after 8 rounds``: the search ran out of rounds.

The sweep (dpbert.run.sweep) adds ``not refinable`` (the method's knob is not refinable; ``not
refinable: halt_threshold is searched on regression tasks only`` where it is on other tasks) and
``off: no selection settings`` (the sweep was given no window).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

SPEEDUP_TOL: float = 1e-9
"""Tolerance on speed-ups: the window's bounds (inclusive, as dpbert.reporting.selection.TOL) and distinctness."""

MAX_ROUNDS: int = 8
"""Rounds of new knobs per variant; with the one-pass budget a step straddling the window narrows
~5x a round, so 8 rounds take a grid interval of 0.1 below a 1e-4 tolerance."""

KNOB_TOL_REL: float = 1e-4
"""Two knobs closer than this fraction of the knob span (``knob_tolerance``) count as adjacent."""

MAX_NEW_ONE_PASS: int = 6
"""New knobs per round when one pass per example scores every knob (``Method.predict_knobs``
overridden: the early-exit methods); scoring them costs little, but every one kept inside the window is timed."""

MAX_NEW_PER_KNOB: int = 4
"""New knobs per round when every knob costs a pass over the split (e.g. DPBERT's threshold)."""


@dataclass(frozen=True)
class KnobSpace:
    """What values a refined knob may take."""

    knob_range: tuple[float, float] | None = None  # bounds of new knobs; None: only between the grid's knobs
    integer: bool = False  # only integers (PABEE's patience): adjacent integers are adjacent knobs
    tol: float = 1e-4  # knobs closer than this are adjacent (float knobs)


@dataclass
class SearchResult:
    points: dict[float, float]  # every scored knob -> layer speed-up (the grid's and the new ones)
    new: list[float] = field(default_factory=list)  # the knobs the search scored, in the order scored
    status: str = ""
    rounds: int = 0  # rounds that scored new knobs


def knob_tolerance(grid: Sequence[float], knob_range: tuple[float, float] | None) -> float:
    """``KNOB_TOL_REL`` of the knob range's width (else the grid's span; else of 1)."""
    if knob_range is not None and knob_range[1] > knob_range[0]:
        span = knob_range[1] - knob_range[0]
    else:
        finite = [k for k in grid if math.isfinite(k)]
        span = (max(finite) - min(finite)) if len(finite) > 1 else 0.0
    return KNOB_TOL_REL * (span if span > 0 else 1.0)


def in_window(speedup: float, window: tuple[float, float]) -> bool:
    lo, hi = window
    return math.isfinite(speedup) and lo - SPEEDUP_TOL <= speedup <= hi + SPEEDUP_TOL


def distinct_in_window(points: Mapping[float, float], window: tuple[float, float]) -> int:
    """How many different speed-ups (up to ``SPEEDUP_TOL``) the points hold inside the window."""
    values = sorted(s for s in points.values() if in_window(s, window))
    count, last = 0, None
    for s in values:
        if last is None or s - last > SPEEDUP_TOL:
            count, last = count + 1, s
    return count


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else str(x)


def _knob(x: float) -> str:
    return f"{x:.6g}"


def _clean(x: float) -> float:
    """12 significant digits: readable knobs in the CSV, far below any tolerance."""
    return float(f"{x:.12g}")


def _window_part(sa: float, sb: float, window: tuple[float, float]) -> tuple[float, float] | None:
    """The part of the window between two speed-ups, if it is wider than the tolerance."""
    lo, hi = window
    u, v = max(min(sa, sb), lo), min(max(sa, sb), hi)
    return (u, v) if v - u > SPEEDUP_TOL else None


def _part_width(sa: float, sb: float, window: tuple[float, float]) -> float:
    part = _window_part(sa, sb, window)
    return 0.0 if part is None else part[1] - part[0]


def _inside(c: float, ka: float, kb: float, space: KnobSpace, taken: Sequence[float]) -> float | None:
    """``c`` made a valid new knob strictly between ka and kb (not within the tolerance of a taken
    knob), or None."""
    if not math.isfinite(c):
        return None
    if space.integer:
        c = float(round(c))
        if not ka < c < kb or any(c == t for t in taken):
            return None
        return c
    c = min(max(c, ka + space.tol), kb - space.tol)
    if not ka + space.tol / 2 <= c <= kb - space.tol / 2 or any(abs(c - t) < space.tol / 2 for t in taken):
        return None
    return _clean(c)


def _interval_candidates(ka: float, sa: float, kb: float, sb: float, part: tuple[float, float],
                         window: tuple[float, float], need: int) -> list[float]:
    """Raw new knobs for one useful interval, best first."""
    lo, hi = window
    straddle = min(sa, sb) < lo - SPEEDUP_TOL and max(sa, sb) > hi + SPEEDUP_TOL
    mid = (ka + kb) / 2
    if not (math.isfinite(sa) and math.isfinite(sb)):  # e.g. N / 0 layers: no line to interpolate on
        return [mid] + [ka + (kb - ka) * j / (need + 2) for j in range(1, need + 2)]
    u, v = part
    line = [ka + (u + (v - u) * j / (need + 1) - sa) / (sb - sa) * (kb - ka) for j in range(1, need + 1)]
    even = [ka + (kb - ka) * j / (need + 2) for j in range(1, need + 2)]
    if not straddle:  # the line is a good guess next to a point inside; the rest narrow a step
        return line + [mid] + even
    return [c for pair in zip(line, even) for c in pair] + even[len(line):] + [mid]


def propose(points: Mapping[float, float], window: tuple[float, float], min_points: int, space: KnobSpace,
            max_new: int = MAX_NEW_ONE_PASS) -> tuple[list[float], str]:
    """The next round's knobs for one variant, from its scored (knob -> layer speed-up) points.

    Returns (new knobs, "") while searching, or ([], final status) when done; see the module."""
    lo, hi = window
    if lo > hi:
        raise ValueError(f"window lower bound {lo} > upper bound {hi}")
    pts = sorted((float(k), float(s)) for k, s in points.items() if not math.isnan(float(s)))
    n_in = distinct_in_window(dict(pts), window)
    if n_in >= min_points:
        return [], f"ok: {n_in} points in window"
    if not pts:
        return [], "unreachable: no scored points"
    need = min_points - n_in
    knobs = [k for k, _ in pts]

    # interior: useful intervals between adjacent scored knobs, widest part of the window first
    useful: list[tuple[float, list[float]]] = []
    stuck: list[tuple[float, float, float, float]] = []
    for (ka, sa), (kb, sb) in pairwise(pts):
        part = _window_part(sa, sb, window)
        if part is None or kb <= ka:
            continue
        # one knob a round (each a training run, e.g. DACT-BERT's tau): aim at the middle of the part
        raw = _interval_candidates(ka, sa, kb, sb, part, window, need if max_new > 1 else 1)
        chosen: list[float] = []
        for c in raw:
            c = _inside(c, ka, kb, space, knobs + chosen)
            if c is not None:
                chosen.append(c)
        if chosen:
            useful.append((part[1] - part[0], chosen))
        else:
            stuck.append((ka, sa, kb, sb))
    if useful:
        useful.sort(key=lambda u: -u[0])
        picked: list[float] = []
        for j in range(max(len(c) for _, c in useful)):  # round-robin over the intervals
            for _, cands in useful:
                if (j < len(cands) and len(picked) < max_new
                        and all(abs(cands[j] - o) >= space.tol / 2 for o in picked)):
                    picked.append(cands[j])
        return sorted(picked), ""
    if stuck:
        ka, sa, kb, sb = max(stuck, key=lambda t: _part_width(t[1], t[3], window))
        have = f" ({n_in} of {min_points} points in window)" if n_in else ""
        return [], (f"jump: speed-up jumps from {_fmt(sa)} to {_fmt(sb)} between knob {_knob(ka)} and "
                    f"{_knob(kb)}{have}")

    # beyond the scored knobs, within the knob range: its end on the side the trend says moves the
    # speed-up towards the window (both sides when it does not say), and the midpoint up to it
    speedups = [s for _, s in pts]
    below, above = max(speedups) < lo - SPEEDUP_TOL, min(speedups) > hi + SPEEDUP_TOL
    rises = pts[-1][1] - pts[0][1]  # > 0: the speed-up grows with the knob
    sides = ["low", "high"]
    if (below or above) and abs(rises) > SPEEDUP_TOL:
        sides = ["high"] if (rises > 0) == below else ["low"]
    out: list[float] = []
    if space.knob_range is not None:
        for side in sides:
            end = knobs[0] if side == "low" else knobs[-1]
            bound = float(space.knob_range[0] if side == "low" else space.knob_range[1])
            if space.integer:
                bound = float(math.ceil(bound) if side == "low" else math.floor(bound))
            if abs(bound - end) < (1 if space.integer else space.tol) or (bound < end) != (side == "low"):
                continue  # the range ends at (or before) the scored knobs
            out.append(_clean(bound))
            mid = _inside((end + bound) / 2, min(end, bound), max(end, bound), space, knobs + out)
            if mid is not None:
                out.append(mid)
    if out:
        return sorted(out[:max_new]), ""
    over = (f"the knob range [{_knob(space.knob_range[0])}, {_knob(space.knob_range[1])}]"
            if space.knob_range is not None else f"the knob grid [{_knob(knobs[0])}, {_knob(knobs[-1])}]")
    if below:
        return [], f"unreachable: max speed-up {_fmt(max(speedups))} over {over}"
    if above:
        return [], f"unreachable: min speed-up {_fmt(min(speedups))} over {over}"
    return [], (f"exhausted: {n_in} of {min_points} points in window; no interval of {over} holds "
                "another speed-up inside it")


def search(grid: Mapping[float, float], score: Callable[[list[float]], Sequence[float]],
           window: tuple[float, float], min_points: int, space: KnobSpace, *,
           max_rounds: int = MAX_ROUNDS, max_new: int = MAX_NEW_ONE_PASS) -> SearchResult:
    """Refine one variant's knob: ``grid`` is its scored (knob -> layer speed-up) points on the primary
    split, ``score(knobs)`` scores new knobs (their speed-ups, in order). Rounds of ``propose`` until
    it says done or ``max_rounds`` rounds have scored knobs."""
    if min_points < 1:
        raise ValueError(f"min_points must be >= 1, got {min_points}")
    points = {float(k): float(s) for k, s in grid.items()}
    result = SearchResult(points)
    for _ in range(max_rounds):
        knobs, status = propose(points, window, min_points, space, max_new)
        if not knobs:
            result.status = status
            return result
        speedups = list(score(list(knobs)))
        if len(speedups) != len(knobs):
            raise ValueError(f"score returned {len(speedups)} speed-ups for {len(knobs)} knobs")
        for k, s in zip(knobs, speedups):
            points[k] = float(s)
            result.new.append(k)
        result.rounds += 1
    knobs, status = propose(points, window, min_points, space, max_new)
    result.status = status if not knobs else (
        f"max rounds: {distinct_in_window(points, window)} of {min_points} points in window after "
        f"{result.rounds} rounds")
    return result
