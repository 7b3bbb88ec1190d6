"""One guild's leaderboard in memory: every member's XP, by user ID and in rank order, in about 40 bytes a member.

Two sorted sequences hold the same members:

* by user ID, each with their XP: a member's XP is a bisection away;
* in rank order, XP descending, then user ID ascending (the tie rule): a
  rank is a bisection and the sizes of the chunks before it, a page is a slice.

Each sequence is a list of chunks of at most ``2 * CHUNK`` entries, and each
chunk a pair of ``array`` columns of 8-byte integers. A member costs 32 bytes
plus the arrays' slack, where a dict and a ``SortedList`` of Python ints cost
about 120. A bisection runs in C, and inserting into a chunk moves at most
32 KiB.

Changes are written behind. :meth:`GuildBoard.add` records the member's new
total in a small dict, ``_changed``, and leaves both sequences as they are.
The first read of a rank, a page or the board's size moves every changed
member to their place at once (:meth:`GuildBoard.settle`; the XP tracker also
settles every board once a flush interval, a few hundred members at a time,
which bounds the dict without stalling the event loop). So a chatting member
costs a dict lookup, and the message path never touches the sorted sequences.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from operator import itemgetter, neg

CHUNK = 2048  # a chunk splits in two past twice this
_first, _second = itemgetter(0), itemgetter(1)


def _chunks(rows: list[tuple[int, int]], typecode: str, column: Callable[[list], Iterable[int]]) -> list[array]:
    """One column of ``rows`` in chunks of CHUNK (built chunk by chunk: no column is ever whole in memory)."""
    return [array(typecode, column(rows[i : i + CHUNK])) for i in range(0, len(rows), CHUNK)] or [array(typecode)]


def _user_ids(rows: list) -> Iterable[int]:
    return map(_first, rows)


def _xps(rows: list) -> Iterable[int]:
    return map(_second, rows)


def _negated_xps(rows: list) -> Iterable[int]:
    return map(neg, map(_second, rows))


class _ById:
    """User IDs in ascending order, each with its XP (never 0: a member without XP is not here)."""

    __slots__ = ("_ids", "_xps", "_firsts", "count")

    def __init__(self, rows: list[tuple[int, int]]) -> None:
        """``rows``: ``(user_id, xp)`` in user ID order, no XP 0."""
        self._ids = _chunks(rows, "Q", _user_ids)
        self._xps = _chunks(rows, "q", _xps)
        self._firsts = [chunk[0] if chunk else 0 for chunk in self._ids]
        self.count = len(rows)

    def _find(self, user_id: int) -> tuple[int, int]:
        """The chunk that holds or would hold ``user_id``, and the place in it."""
        c = max(bisect_right(self._firsts, user_id) - 1, 0)
        return c, bisect_left(self._ids[c], user_id)

    def get(self, user_id: int) -> int:
        c, i = self._find(user_id)
        ids = self._ids[c]
        return self._xps[c][i] if i < len(ids) and ids[i] == user_id else 0

    def set(self, user_id: int, xp: int) -> None:
        """Give ``user_id`` this XP; 0 takes them out."""
        c, i = self._find(user_id)
        ids, xps = self._ids[c], self._xps[c]
        if i < len(ids) and ids[i] == user_id:
            if xp:
                xps[i] = xp
                return
            del ids[i], xps[i]
            self.count -= 1
            if not ids and len(self._ids) > 1:
                del self._ids[c], self._xps[c], self._firsts[c]
            elif i == 0 and ids:
                self._firsts[c] = ids[0]
            return
        if not xp:
            return
        ids.insert(i, user_id)
        xps.insert(i, xp)
        self.count += 1
        if i == 0:
            self._firsts[c] = user_id
        if len(ids) > 2 * CHUNK:
            self._ids[c + 1 : c + 1] = [ids[CHUNK:]]
            self._xps[c + 1 : c + 1] = [xps[CHUNK:]]
            self._firsts.insert(c + 1, ids[CHUNK])
            del ids[CHUNK:], xps[CHUNK:]

    def nbytes(self) -> int:
        return sum(chunk.buffer_info()[1] * chunk.itemsize for chunk in (*self._ids, *self._xps))


class _ByRank:
    """``(-xp, user_id)`` pairs in ascending order: the leaderboard, best first."""

    __slots__ = ("_negs", "_ids", "_firsts")

    def __init__(self, rows: list[tuple[int, int]]) -> None:
        """``rows``: ``(user_id, xp)`` in rank order."""
        self._negs = _chunks(rows, "q", _negated_xps)
        self._ids = _chunks(rows, "Q", _user_ids)
        self._firsts = [(n[0], i[0]) if n else (0, 0) for n, i in zip(self._negs, self._ids, strict=True)]

    @classmethod
    def from_columns(cls, negs: list[int], ids: list[int]) -> _ByRank:
        """From ``-xp`` and user ID columns already in rank order."""
        by_rank = cls.__new__(cls)
        by_rank._negs = [array("q", negs[i : i + CHUNK]) for i in range(0, len(negs), CHUNK)] or [array("q")]
        by_rank._ids = [array("Q", ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)] or [array("Q")]
        by_rank._firsts = [(n[0], i[0]) if n else (0, 0) for n, i in zip(by_rank._negs, by_rank._ids, strict=True)]
        return by_rank

    def _find(self, neg_xp: int, user_id: int) -> tuple[int, int]:
        c = max(bisect_right(self._firsts, (neg_xp, user_id)) - 1, 0)
        negs = self._negs[c]
        low = bisect_left(negs, neg_xp)
        return c, bisect_left(self._ids[c], user_id, low, bisect_right(negs, neg_xp, low))

    def insert(self, neg_xp: int, user_id: int) -> None:
        c, i = self._find(neg_xp, user_id)
        negs, ids = self._negs[c], self._ids[c]
        negs.insert(i, neg_xp)
        ids.insert(i, user_id)
        if i == 0:
            self._firsts[c] = (neg_xp, user_id)
        if len(negs) > 2 * CHUNK:
            self._negs[c + 1 : c + 1] = [negs[CHUNK:]]
            self._ids[c + 1 : c + 1] = [ids[CHUNK:]]
            self._firsts.insert(c + 1, (negs[CHUNK], ids[CHUNK]))
            del negs[CHUNK:], ids[CHUNK:]

    def remove(self, neg_xp: int, user_id: int) -> None:
        c, i = self._find(neg_xp, user_id)
        negs, ids = self._negs[c], self._ids[c]
        del negs[i], ids[i]
        if not negs and len(self._negs) > 1:
            del self._negs[c], self._ids[c], self._firsts[c]
        elif i == 0 and negs:
            self._firsts[c] = (negs[0], ids[0])

    def index(self, neg_xp: int, user_id: int) -> int:
        """0-based place of a pair that is here."""
        c, i = self._find(neg_xp, user_id)
        return sum(map(len, self._negs[:c])) + i

    def slice(self, start: int, count: int) -> list[tuple[int, int]]:
        """``(user_id, xp)`` at places ``start`` to ``start + count - 1``."""
        rows: list[tuple[int, int]] = []
        for negs, ids in zip(self._negs, self._ids, strict=True):
            if start >= len(negs):
                start -= len(negs)
                continue
            end = min(len(negs), start + count - len(rows))
            rows.extend(zip(ids[start:end], map(neg, negs[start:end]), strict=True))
            if len(rows) == count:
                break
            start = 0
        return rows

    def nbytes(self) -> int:
        return sum(chunk.buffer_info()[1] * chunk.itemsize for chunk in (*self._negs, *self._ids))


class GuildBoard:
    """Every member's XP in one guild, in leaderboard order."""

    __slots__ = ("_by_id", "_by_rank", "_changed")

    @classmethod
    def from_id_order(cls, rows: list[tuple[int, int]]) -> GuildBoard:
        """A board of ``rows`` in user ID order, none with XP 0 (as the database reads them), built for a
        worker thread: no step holds the GIL long (a sort of a million rows would, for a tenth of a second).

        The rank order comes from grouping the members by XP in a plain loop
        (bytecode: the interpreter lets the event loop's thread in every few
        milliseconds), each group keeping the user ID order, and the groups
        taken from the most XP down.
        """
        board = cls.__new__(cls)
        board._by_id = _ById(rows)
        by_xp: dict[int, list[int]] = {}
        for user_id, xp in rows:
            if (ids := by_xp.get(xp)) is None:
                by_xp[xp] = [user_id]
            else:
                ids.append(user_id)
        negs: list[int] = []
        ids: list[int] = []
        for xp in sorted(by_xp, reverse=True):
            group = by_xp.pop(xp)
            ids += group
            negs += itertools.repeat(-xp, len(group))
        board._by_rank = _ByRank.from_columns(negs, ids)
        board._changed = {}
        return board

    def __init__(self, rows: Iterable[tuple[int, int]] = ()) -> None:
        by_id = sorted(row for row in rows if row[1])
        ranked = sorted(by_id, key=_second, reverse=True)  # a stable sort: ties keep their user ID order
        self._by_id = _ById(by_id)
        self._by_rank = _ByRank(ranked)
        self._changed: dict[int, int] = {}  # user -> XP now, not yet in the sequences

    def __len__(self) -> int:
        self.settle()
        return self._by_id.count

    def xp_of(self, user_id: int) -> int:
        xp = self._changed.get(user_id)
        return self._by_id.get(user_id) if xp is None else xp

    def add(self, user_id: int, amount: int) -> tuple[int, int]:
        """Add ``amount`` XP (an admin's change may be negative); return the member's XP before and after.

        A member left with no XP leaves the board (as after a reset).
        """
        before = self.xp_of(user_id)
        self._changed[user_id] = after = before + amount
        return before, after

    def settle(self, limit: int | None = None) -> bool:
        """Move the members changed since the last read to their place (at most ``limit`` of them);
        True when none is left to move."""
        changed, by_id, by_rank = self._changed, self._by_id, self._by_rank
        for _ in range(len(changed) if limit is None else min(limit, len(changed))):
            user_id, after = changed.popitem()
            before = by_id.get(user_id)
            if before == after:
                continue
            if before:
                by_rank.remove(-before, user_id)
            if after:
                by_rank.insert(-after, user_id)
            by_id.set(user_id, after)
        return not changed

    def rank_of(self, user_id: int) -> int | None:
        """1-based rank, or None for a member without XP."""
        self.settle()
        xp = self._by_id.get(user_id)
        return self._by_rank.index(-xp, user_id) + 1 if xp else None

    def page(self, start: int, count: int) -> list[tuple[int, int]]:
        """``(user_id, xp)`` for ranks ``start + 1`` to ``start + count``."""
        self.settle()
        return self._by_rank.slice(start, count)

    def nbytes(self) -> int:
        """The bytes its arrays take (with their slack), for the benchmarks."""
        return self._by_id.nbytes() + self._by_rank.nbytes()
