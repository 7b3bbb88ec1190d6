"""The SQL for coins: wallets and the ledger.

Every method that moves coins is one transaction that also writes the ledger
row, so the ledger always explains every balance. A debit only happens if
the balance covers it (one conditional statement), and CHECK (coins >= 0) is
the backstop. Where a change must know the balance first (take, set), the
transaction locks the wallet before reading it, so another process's write
cannot slip in between the read and the write (PostgreSQL's READ COMMITTED
would let it; SQLite's single writer never does).
"""

from __future__ import annotations

import time

from storage.records import Daily, InsufficientCoins, Movement

CREDIT = (
    "INSERT INTO wallets (guild_id, user_id, coins, name) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, name = excluded.name "
    "RETURNING coins"
)
# The name ($4) is the member's current one, or NULL to keep the stored one.
DEBIT = (
    "UPDATE wallets SET coins = coins - $3, name = COALESCE($4, name) "
    "WHERE guild_id = $1 AND user_id = $2 AND coins >= $3 RETURNING coins"
)
BALANCE = "SELECT coins FROM wallets WHERE guild_id = $1 AND user_id = $2"
# A wallet locked (created empty if need be) before its balance is read: an upsert takes the row's lock.
LOCK_WALLET = (
    "INSERT INTO wallets (guild_id, user_id, coins, name) VALUES ($1, $2, 0, $3) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET name = excluded.name RETURNING coins"
)
# A no-op that takes an existing wallet's lock and reads its balance.
LOCK_EXISTING = "UPDATE wallets SET coins = coins WHERE guild_id = $1 AND user_id = $2 RETURNING coins"
RECORD = (
    "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


async def _debit(conn, guild_id: int, user_id: int, amount: int, name: str | None = None) -> int:
    """Take ``amount`` only if the balance covers it and return the new balance; else raise InsufficientCoins."""
    balance = await conn.fetchval(DEBIT, guild_id, user_id, amount, name)
    if balance is None:
        raise InsufficientCoins(await conn.fetchval(BALANCE, guild_id, user_id) or 0)
    return balance


async def _record(conn, guild_id, from_id, to_id, amount, kind, actor_id, reason) -> None:
    await conn.execute(RECORD, guild_id, from_id, to_id, amount, kind, actor_id, reason, int(time.time()))


class CoinsSQL:
    """Coins and the ledger (mixed into db.Database)."""

    async def balance(self, guild_id: int, user_id: int) -> int:
        return await self._store.fetchval(BALANCE, guild_id, user_id) or 0

    async def transfer(
        self, guild_id: int, from_id: int, to_id: int, amount: int, *, from_name: str, to_name: str
    ) -> tuple[int, int]:
        """Move coins between two members; returns both new balances.

        Raises InsufficientCoins (changing nothing) when the sender cannot cover it.
        """
        if from_id == to_id or amount <= 0:
            raise ValueError("a transfer needs two members and a positive amount")

        async def move(conn):
            # Both wallets are locked in user-ID order: two opposite transfers at once then
            # queue behind each other instead of deadlocking (PostgreSQL would abort one).
            # The debit locks the sender's, the credit the receiver's; a receiver with
            # the lower ID is locked first. Each statement returns its new balance.
            if to_id < from_id:
                await conn.execute(LOCK_EXISTING, guild_id, to_id)
            sent_from = await _debit(conn, guild_id, from_id, amount, from_name)
            sent_to = await conn.fetchval(CREDIT, guild_id, to_id, amount, to_name)
            await _record(conn, guild_id, from_id, to_id, amount, "transfer", from_id, None)
            return sent_from, sent_to

        return await self._store.write(move)

    async def claim_daily(
        self, guild_id: int, user_id: int, name: str, amount: int, now: int, period: int = 86400
    ) -> Daily:
        """Claim the daily coins once per ``period`` seconds; the claim time is stored.

        The check and the credit are one statement (the upsert only updates a
        wallet whose last claim is old enough), so two claims at once, from
        two processes even, can never both pay.
        """

        async def claim(conn):
            paid = await conn.fetchval(
                "INSERT INTO wallets (guild_id, user_id, coins, name, last_daily) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, "
                "name = excluded.name, last_daily = excluded.last_daily "
                "WHERE wallets.last_daily IS NULL OR wallets.last_daily <= $6 "
                "RETURNING coins",
                guild_id,
                user_id,
                amount,
                name,
                now,
                now - period,
            )
            if paid is not None:
                await _record(conn, guild_id, None, user_id, amount, "daily", user_id, None)
                return Daily(True, paid, now + period)
            row = await conn.fetchrow(
                "SELECT coins, last_daily FROM wallets WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
            )
            return Daily(False, row[0], row[1] + period)

        return await self._store.write(claim)

    async def grant(
        self, guild_id: int, user_id: int, name: str, amount: int, kind: str, actor_id: int, reason: str | None = None
    ) -> int:
        """Create coins for a member (daily, level-up, an admin's give); returns the new balance."""

        async def give(conn):
            balance = await conn.fetchval(CREDIT, guild_id, user_id, amount, name)
            await _record(conn, guild_id, None, user_id, amount, kind, actor_id, reason)
            return balance

        return await self._store.write(give)

    async def take(
        self, guild_id: int, user_id: int, amount: int, actor_id: int, reason: str | None = None
    ) -> tuple[int, int]:
        """Remove up to ``amount`` coins, never below zero; returns (taken, new balance)."""

        async def remove(conn):
            held = await conn.fetchval(LOCK_EXISTING, guild_id, user_id) or 0  # locked: the debit sees this balance
            taken = min(amount, held)
            if not taken:
                return 0, held
            balance = await _debit(conn, guild_id, user_id, taken)
            await _record(conn, guild_id, user_id, None, taken, "take", actor_id, reason)
            return taken, balance

        return await self._store.write(remove)

    async def set_balance(
        self, guild_id: int, user_id: int, name: str, amount: int, actor_id: int, reason: str | None = None
    ) -> int:
        """Set a balance; the ledger records the difference. Returns the old balance."""

        async def set_to(conn):
            old = await conn.fetchval(LOCK_WALLET, guild_id, user_id, name)
            if amount > old:
                await conn.fetchval(CREDIT, guild_id, user_id, amount - old, name)
                await _record(conn, guild_id, None, user_id, amount - old, "set", actor_id, reason)
            elif amount < old:
                await _debit(conn, guild_id, user_id, old - amount)
                await _record(conn, guild_id, user_id, None, old - amount, "set", actor_id, reason)
            return old

        return await self._store.write(set_to)

    async def movements(self, guild_id: int, user_id: int, limit: int = 10) -> list[Movement]:
        """A member's latest coin movements, newest first."""
        rows = await self._store.fetch(
            "SELECT id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger "
            "WHERE guild_id = $1 AND (from_id = $2 OR to_id = $2) ORDER BY id DESC LIMIT $3",
            guild_id,
            user_id,
            limit,
        )
        return [Movement(*row) for row in rows]

    async def richest(self, guild_id: int, offset: int, limit: int) -> list[tuple[int, int, str]]:
        """``(user_id, coins, last known name)`` by coins, ties to the lower user ID."""
        rows = await self._store.fetch(
            "SELECT user_id, coins, name FROM wallets WHERE guild_id = $1 AND coins > 0 "
            "ORDER BY coins DESC, user_id LIMIT $2 OFFSET $3",
            guild_id,
            limit,
            offset,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def holders(self, guild_id: int) -> int:
        return await self._store.fetchval("SELECT COUNT(*) FROM wallets WHERE guild_id = $1 AND coins > 0", guild_id)
