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

import heapq
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from operator import itemgetter, neg

CHUNK = 2048  # a chunk splits in two past twice this
SORT_PIECE = 8192  # values sorted in one call while a board is built (about a millisecond)
XP_GROUPS = 256  # small dicts the members are counted by XP in while a board is built (a power of two)
_first, _second = itemgetter(0), itemgetter(1)


class _Columns:
    """Two columns of 8-byte integers sorted together, in chunks, with each chunk's first key for finding it.

    A subclass says the columns' array type codes and what a chunk's key is;
    this keeps the chunks: inserting (a chunk past ``2 * CHUNK`` splits in
    two) and deleting (an emptied chunk goes, unless it is the only one).
    """

    __slots__ = ("_a", "_b", "_firsts")
    TYPECODES: tuple[str, str]

    def __init__(self, a: array, b: array) -> None:
        """From whole columns already in order, of the TYPECODES (a slice of an array is a copy)."""
        self._a = [a[i : i + CHUNK] for i in range(0, len(a), CHUNK)]
        self._b = [b[i : i + CHUNK] for i in range(0, len(b), CHUNK)]
        if not self._a:
            self._a, self._b = [array(self.TYPECODES[0])], [array(self.TYPECODES[1])]
        self._firsts = [self._key(c) for c in range(len(self._a))]

    def _key(self, c: int) -> object:
        """Chunk ``c``'s first key (anything for the only chunk when it is empty)."""
        raise NotImplementedError

    def _insert_at(self, c: int, i: int, a: int, b: int) -> None:
        column_a, column_b = self._a[c], self._b[c]
        column_a.insert(i, a)
        column_b.insert(i, b)
        if len(column_a) > 2 * CHUNK:
            self._a.insert(c + 1, column_a[CHUNK:])
            self._b.insert(c + 1, column_b[CHUNK:])
            del column_a[CHUNK:], column_b[CHUNK:]
            self._firsts.insert(c + 1, self._key(c + 1))
        if i == 0:
            self._firsts[c] = self._key(c)

    def _delete_at(self, c: int, i: int) -> None:
        column_a, column_b = self._a[c], self._b[c]
        del column_a[i], column_b[i]
        if not column_a and len(self._a) > 1:
            del self._a[c], self._b[c], self._firsts[c]
        elif i == 0 and column_a:
            self._firsts[c] = self._key(c)

    def __len__(self) -> int:
        return sum(map(len, self._a))


class _ById(_Columns):
    """User IDs in ascending order, each with its XP (never 0: a member without XP is not here)."""

    __slots__ = ()
    TYPECODES = ("Q", "q")

    def _key(self, c: int) -> int:
        ids = self._a[c]
        return ids[0] if ids else 0

    def _find(self, user_id: int) -> tuple[int, int]:
        """The chunk that holds or would hold ``user_id``, and the place in it."""
        c = max(bisect_right(self._firsts, user_id) - 1, 0)
        return c, bisect_left(self._a[c], user_id)

    def get(self, user_id: int) -> int:
        c, i = self._find(user_id)
        ids = self._a[c]
        return self._b[c][i] if i < len(ids) and ids[i] == user_id else 0

    def set(self, user_id: int, xp: int) -> None:
        """Give ``user_id`` this XP; 0 takes them out."""
        c, i = self._find(user_id)
        ids = self._a[c]
        if i < len(ids) and ids[i] == user_id:
            if xp:
                self._b[c][i] = xp
            else:
                self._delete_at(c, i)
        elif xp:
            self._insert_at(c, i, user_id, xp)


class _ByRank(_Columns):
    """``(-xp, user_id)`` pairs in ascending order: the leaderboard, best first."""

    __slots__ = ()
    TYPECODES = ("q", "Q")

    def _key(self, c: int) -> tuple[int, int]:
        negs, ids = self._a[c], self._b[c]
        return (negs[0], ids[0]) if negs else (0, 0)

    def _find(self, neg_xp: int, user_id: int) -> tuple[int, int]:
        c = max(bisect_right(self._firsts, (neg_xp, user_id)) - 1, 0)
        negs = self._a[c]
        low = bisect_left(negs, neg_xp)
        return c, bisect_left(self._b[c], user_id, low, bisect_right(negs, neg_xp, low))

    def insert(self, neg_xp: int, user_id: int) -> None:
        self._insert_at(*self._find(neg_xp, user_id), neg_xp, user_id)

    def remove(self, neg_xp: int, user_id: int) -> None:
        self._delete_at(*self._find(neg_xp, user_id))

    def index(self, neg_xp: int, user_id: int) -> int:
        """0-based place of a pair that is here."""
        c, i = self._find(neg_xp, user_id)
        return sum(map(len, self._a[:c])) + i

    def slice(self, start: int, count: int) -> list[tuple[int, int]]:
        """``(user_id, xp)`` at places ``start`` to ``start + count - 1``."""
        rows: list[tuple[int, int]] = []
        for negs, ids in zip(self._a, self._b, strict=True):
            if start >= len(negs):
                start -= len(negs)
                continue
            end = min(len(negs), start + count - len(rows))
            rows.extend(zip(ids[start:end], map(neg, negs[start:end]), strict=True))
            if len(rows) == count:
                break
            start = 0
        return rows


class GuildBoard:
    """Every member's XP in one guild, in leaderboard order."""

    __slots__ = ("_by_id", "_by_rank", "_changed")

    def __init__(self, rows: Iterable[tuple[int, int]] = ()) -> None:
        """A board of ``(user_id, xp)`` rows in any order (see from_columns for the database's)."""
        rows = sorted(row for row in rows if row[1])
        self._fill(array("Q", map(_first, rows)), array("q", map(_second, rows)))

    @classmethod
    def from_columns(cls, user_ids: array, xps: array) -> GuildBoard:
        """A board of user IDs in ascending order and their XP (none 0), as the database reads them: no sort."""
        board = cls.__new__(cls)
        board._fill(user_ids, xps)
        return board

    def _fill(self, user_ids: array, xps: array) -> None:
        """Build from columns in user ID order, in steps a worker thread can be interrupted between.

        No step holds the GIL long, as the event loop waits for it meanwhile: not a sort of the million
        members (a fifth of a second), nor a dict of a million distinct XP values growing or being freed
        (30 ms each), nor a million containers for the garbage collector's passes to walk (a pass grew to
        50 ms). The members are counted by XP, the counts turned into where each XP's members start in
        rank order (from the most XP down), and each member put in place in user ID order, which keeps
        ties by user ID. The counts are kept in ``XP_GROUPS`` small dicts of plain integers, which the
        collector does not track, and freed one at a time.
        """
        self._by_id = _ById(user_ids, xps)
        groups: list[dict[int, int]] = [{} for _ in range(XP_GROUPS)]  # XP -> members with it, then where they start
        mask = XP_GROUPS - 1
        for xp in xps:
            group = groups[xp & mask]
            group[xp] = group.get(xp, 0) + 1
        start, negs = 0, array("q")
        for xp in _descending(chain.from_iterable(groups)):
            group = groups[xp & mask]
            count = group[xp]
            group[xp] = start
            start += count
            _append_copies(negs, -xp, count)
        ids = array("Q")
        _append_copies(ids, 0, len(user_ids))
        for user_id, xp in zip(user_ids, xps, strict=True):
            group = groups[xp & mask]
            ids[at := group[xp]] = user_id
            group[xp] = at + 1
        for group in groups:
            group.clear()
        self._by_rank = _ByRank(negs, ids)
        self._changed: dict[int, int] = {}  # user -> XP now, not yet in the sequences

    def __len__(self) -> int:
        self.settle()
        return len(self._by_id)

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

    @property
    def unsettled(self) -> int:
        """Members changed since the last settle."""
        return len(self._changed)

    def settle(self, limit: int | None = None) -> None:
        """Move the members changed since the last read to their place (at most ``limit`` of them;
        ``unsettled`` says how many are left)."""
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

    def rank_of(self, user_id: int) -> int | None:
        """1-based rank, or None for a member without XP."""
        self.settle()
        xp = self._by_id.get(user_id)
        return self._by_rank.index(-xp, user_id) + 1 if xp else None

    def page(self, start: int, count: int) -> list[tuple[int, int]]:
        """``(user_id, xp)`` for ranks ``start + 1`` to ``start + count``."""
        self.settle()
        return self._by_rank.slice(start, count)


def _append_copies(column: array, value: int, count: int) -> None:
    """Append ``count`` copies of ``value`` to ``column`` a piece at a time: a million at once, one C
    call, held the GIL 4-20 ms (the pages it wrote to were new)."""
    piece = array(column.typecode, (value,)) * min(count, SORT_PIECE)
    for _ in range(count // SORT_PIECE):
        column += piece
    column += piece[: count % SORT_PIECE]


def _descending(values: Iterable[int]) -> Iterator[int]:
    """``values`` from the highest down, sorted a piece at a time and merged in a plain loop: one sort
    of a million distinct values would hold the GIL for a fifth of a second."""
    values, pieces = iter(values), []
    while piece := sorted(islice(values, SORT_PIECE), reverse=True):
        pieces.append(array("q", piece))  # one object for the garbage collector, not thousands
    return heapq.merge(*pieces, reverse=True)
