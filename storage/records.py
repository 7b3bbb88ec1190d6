"""The values the store hands out and takes in, and the errors it raises.

Plain named tuples and exceptions, with no SQL and no backend behind them, so
the bot and the extensions can use them without knowing which database runs.
"""

from __future__ import annotations

from typing import NamedTuple


class DatabaseRefused(Exception):
    """The database cannot be used; the message is one line that says why and what to do."""


class DatabaseUnavailable(Exception):
    """The database could not be reached (a PostgreSQL server that is down or restarting) or written (a full disk).

    Whatever asked may try again later; chat keeps earning XP in memory meanwhile.
    """


class DatabaseBusy(DatabaseUnavailable):
    """Another program held SQLite's write lock past the busy timeout; nothing was changed."""


class ConstraintViolated(Exception):
    """A write broke a constraint of the schema (a CHECK, a key); nothing was changed."""


class InsufficientCoins(Exception):
    """A debit larger than the balance: nothing was changed."""

    def __init__(self, balance: int) -> None:
        super().__init__(balance)
        self.balance = balance


class XpGain(NamedTuple):
    """XP a member earned since the last flush, and the level-up coins it brought."""

    guild_id: int
    user_id: int
    xp: int
    name: str
    seen_at: int  # Unix seconds of the first message behind this gain
    coins: int = 0  # level-up coins, written with the XP that earned them


class Standing(NamedTuple):
    """A member's place in their server: total XP, rank (None without XP) and how many members are ranked."""

    xp: int
    rank: int | None
    ranked: int


class Unsaved(NamedTuple):
    """Gains a shutdown could not write, with the flush ID they were (or would have been) sent under."""

    flush_id: int
    gains: list[XpGain]


class Daily(NamedTuple):
    claimed: bool
    balance: int
    next_claim_at: int  # Unix seconds


class Movement(NamedTuple):
    """One ledger row."""

    id: int
    from_id: int | None
    to_id: int | None
    amount: int
    kind: str
    actor_id: int
    reason: str | None
    created_at: int


class Case(NamedTuple):
    number: int
    action: str
    target_id: int
    target_name: str
    moderator_id: int
    reason: str | None
    created_at: int


class SyncState(NamedTuple):
    """How far a guild's ``!rewards sync`` got."""

    guild_id: int
    channel_id: int
    message_id: int | None
    started_by: int
    after_user: int  # members are synced in user ID order: the last one done
    done: int
    changed: int
    failed: int
    started_at: int


class OldReason(NamedTuple):
    reason: str | None
    moderator_id: int
    replaced_at: int


class AuditEntry(NamedTuple):
    """One XP change that was not chat: who made it, when, to whom, before and after."""

    number: int  # 1, 2, 3 ... per guild
    user_id: int
    actor_id: int | None  # None: made from the command line (an import)
    kind: str  # give, take, set, reset, reset-server, undo, import
    xp_before: int
    xp_after: int
    reason: str | None
    created_at: int  # Unix seconds
    undone_by: int | None  # the number of the change that reverted this one


class CannotUndo(Exception):
    """``undo_xp`` refused; ``why`` says which rule, ``entry`` is the change asked for (if it exists).

    why: ``missing`` (no such number), ``undone`` (already reverted, by ``entry.undone_by``),
    ``undo`` (it is itself an undo), ``later`` (change ``later`` to the member came after it),
    ``earned`` (the member's XP is ``xp_now``, not what the change left).
    """

    def __init__(self, why: str, entry: AuditEntry | None = None, *, later: int = 0, xp_now: int = 0) -> None:
        super().__init__(why)
        self.why, self.entry, self.later, self.xp_now = why, entry, later, xp_now
