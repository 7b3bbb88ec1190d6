"""Level curves: pure functions from total XP to a level and back.

A level is never stored. It is always derived from a member's total XP, so
the two can never disagree, and a server can switch curves at any time.

Two curves are offered:

* ``linear`` (the default, from the seed tutorial): level 1 at 0 XP and a new
  level every ``step`` XP (100 by default).
* ``mee6``: the curve MEE6 uses, so servers moving over see the levels they
  know. Going from level L to L+1 costs ``5*L**2 + 50*L + 100`` XP and, as in
  MEE6, members start at level 0.

Neither curve has a cap: the functions work on arbitrarily large integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CurveName = Literal["linear", "mee6"]
CURVE_NAMES: tuple[CurveName, ...] = ("linear", "mee6")


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a member stands on the curve."""

    level: int
    xp: int
    into_level: int  # XP earned since reaching ``level``
    level_span: int  # XP between ``level`` and ``level + 1``

    @property
    def to_next(self) -> int:
        return self.level_span - self.into_level


def mee6_xp_to_next(level: int) -> int:
    """XP needed to go from ``level`` to ``level + 1`` on MEE6's curve."""
    return 5 * level * level + 50 * level + 100


def mee6_total_xp(level: int) -> int:
    """Total XP needed to reach ``level`` from 0 XP on MEE6's curve.

    Closed form of the sum of ``mee6_xp_to_next(k)`` for k in 0..level-1.
    """
    n = level
    return 5 * (n - 1) * n * (2 * n - 1) // 6 + 25 * n * (n - 1) + 100 * n


@dataclass(frozen=True, slots=True)
class Curve:
    """A level curve; build one with :func:`curve`."""

    name: CurveName
    first_level: int
    step: int = 100  # only used by the linear curve

    def total_xp_for(self, level: int) -> int:
        """Total XP a member needs to reach ``level``."""
        if level <= self.first_level:
            return 0
        if self.name == "linear":
            return (level - self.first_level) * self.step
        return mee6_total_xp(level)

    def level_for(self, xp: int) -> int:
        """The level a member with ``xp`` total XP has reached."""
        if xp <= 0:
            return self.first_level
        if self.name == "linear":
            return self.first_level + xp // self.step
        # The MEE6 total grows like L**3, so search: double an upper bound,
        # then bisect. Exact for any size of integer.
        low, high = 0, 1
        while mee6_total_xp(high) <= xp:
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if mee6_total_xp(middle) <= xp:
                low = middle
            else:
                high = middle
        return low

    def progress(self, xp: int) -> Progress:
        xp = max(xp, 0)
        level = self.level_for(xp)
        start = self.total_xp_for(level)
        return Progress(
            level=level,
            xp=xp,
            into_level=xp - start,
            level_span=self.total_xp_for(level + 1) - start,
        )


def curve(name: CurveName, step: int = 100) -> Curve:
    """The named curve: ``linear`` starts at level 1, ``mee6`` at level 0."""
    if name == "linear":
        return Curve("linear", first_level=1, step=step)
    if name == "mee6":
        return Curve("mee6", first_level=0)
    raise ValueError(f"unknown level curve {name!r}")


def progress_bar(into_level: int, level_span: int, width: int = 12) -> str:
    """A text bar such as ``▰▰▰▰▱▱▱▱▱▱``."""
    filled = width * into_level // level_span if level_span > 0 else width
    filled = min(max(filled, 0), width)
    return "▰" * filled + "▱" * (width - filled)
