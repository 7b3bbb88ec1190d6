"""Shared fixtures: a real database on each backend, the fake Discord, and the real bot as a process.

Every test that uses ``storage`` (directly, or through ``db`` or ``tally``)
runs twice: on a SQLite file in its temporary folder and on a fresh
PostgreSQL database of its own, dropped afterwards. ``@pytest.mark.backends("sqlite")``
keeps a test to the backends it names (tests about the SQLite file itself).
The server comes from TALLY_TEST_POSTGRES_URL (default: the local server);
where none answers, the PostgreSQL runs are skipped with the reason, unless
TALLY_TEST_REQUIRE_POSTGRES=1 (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from db import Database
from storage import postgres
from tests.fake_discord import (
    BAN_MEMBERS,
    KICK_MEMBERS,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    Channel,
    FakeDiscord,
    Guild,
    Post,
    Role,
    User,
)

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tests" / "launcher.py"


POSTGRES_URL = os.environ.get("TALLY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("TALLY_TEST_REQUIRE_POSTGRES") == "1"
BACKENDS = ("sqlite", "postgres")
_postgres_problem: list[str] = []  # asked once per run: why the server cannot be used, if it cannot


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "storage" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("storage", marker.args if marker else BACKENDS, indirect=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Skips grouped by reason: one line says why every PostgreSQL run was skipped."""
    reasons = Counter(
        report.longrepr[2] for report in terminalreporter.stats.get("skipped", []) if isinstance(report.longrepr, tuple)
    )
    for reason, count in reasons.items():
        terminalreporter.write_line(f"SKIPPED {count} tests: {reason.removeprefix('Skipped: ')}", yellow=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run the test on these backends only")


def postgres_url(database: str) -> str:
    """TALLY_TEST_POSTGRES_URL with another database name."""
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


async def _admin() -> asyncpg.Connection:
    """A connection to the test server's own database, or a skip (a failure in CI) saying why not."""
    if not _postgres_problem:
        try:
            return await asyncpg.connect(POSTGRES_URL, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            _postgres_problem.append(
                f"the PostgreSQL runs need a server: none answered at TALLY_TEST_POSTGRES_URL="
                f"{postgres.describe(POSTGRES_URL)} ({type(exc).__name__})"
            )
    if REQUIRE_POSTGRES:
        pytest.fail(f"{_postgres_problem[0]}, and TALLY_TEST_REQUIRE_POSTGRES=1")
    pytest.skip(_postgres_problem[0])


@dataclass
class Storage:
    """One test's database: a SQLite file in its folder, or a PostgreSQL database of its own."""

    backend: str
    folder: Path
    url: str | None = None  # PostgreSQL only
    env: dict[str, str] = field(default_factory=dict)  # what the bot is told (DATABASE_PATH or DATABASE_URL)
    siblings: list[str] = field(default_factory=list)  # further PostgreSQL databases, dropped with this one

    @property
    def target(self) -> str | Path:
        return self.url or self.folder / "data" / "tally.db"

    async def open(self, **options: Any) -> Database:
        return await Database.open(self.target, unsaved_folder=self.folder / "data", **options)

    async def rows(self, query: str, *args: Any) -> list[tuple]:
        """Read what is stored, through the storage interface (``$1`` placeholders, as in storage/)."""
        db = await self.open()
        try:
            return [tuple(row) for row in await db._store.fetch(query, *args)]
        finally:
            await db.close()

    async def sibling(self, name: str) -> Storage:
        """A second, empty database on the same backend (another file, or another PostgreSQL database)."""
        if self.backend == "sqlite":
            folder = self.folder / name
            folder.mkdir()
            return Storage("sqlite", folder, env={"DATABASE_PATH": "data/tally.db"})
        database = f"{urllib.parse.urlsplit(self.url).path.strip('/')}_{name}"
        admin = await _admin()
        await admin.execute(f'CREATE DATABASE "{database}"')  # a name made here, never input
        await admin.close()
        self.siblings.append(database)
        return Storage("postgres", self.folder, postgres_url(database), env={"DATABASE_URL": postgres_url(database)})

    async def xp(self, guild_id: int) -> dict[int, int]:
        return dict(await self.rows("SELECT user_id, xp FROM members WHERE guild_id = $1", guild_id))


@pytest.fixture
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        yield Storage("sqlite", tmp_path, env={"DATABASE_PATH": "data/tally.db"})
        return
    admin = await _admin()
    name = f"tally_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')  # a name made here, never input
    url = postgres_url(name)
    storage = Storage("postgres", tmp_path, url, env={"DATABASE_URL": url})
    try:
        yield storage
    finally:
        for database in [name, *storage.siblings]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db(storage: Storage) -> AsyncIterator[Database]:
    database = await storage.open()
    yield database
    await database.close()


@dataclass
class World:
    """The fake Discord with one server: members, a moderator role and a channel."""

    fake: FakeDiscord
    guild: Guild
    general: Channel
    owner: User
    alice: User
    bob: User
    carol: User
    mod: User
    mod_role: Role
    other_bot: User

    async def say(self, author: User, content: str, channel: Channel | None = None) -> None:
        await self.fake.say(channel or self.general, author, content)

    async def ask(self, author: User, content: str, channel: Channel | None = None, timeout: float = 10.0) -> Post:
        """Say something and return the bot's next post in the same channel."""
        channel = channel or self.general
        count = len(self.fake.posts)
        await self.say(author, content, channel)
        return await self.fake.wait_for_post(after=count, timeout=timeout, channel_id=channel.id)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    fake = FakeDiscord()
    owner = fake.add_user("owner")
    guild = fake.add_guild("Tally Test Server", owner=owner)
    mod_role = fake.add_role(
        guild, "Moderators", MANAGE_GUILD | MANAGE_MESSAGES | KICK_MEMBERS | BAN_MEMBERS, position=2
    )
    bot_role = fake.add_role(guild, "Tally", KICK_MEMBERS | BAN_MEMBERS, position=5)  # the invite's managed role
    guild.members[fake.bot_user.id].roles.append(bot_role.id)
    general = fake.add_channel(guild, "general")
    alice = fake.add_member(guild, "alice")
    bob = fake.add_member(guild, "bob")
    carol = fake.add_member(guild, "carol")
    mod = fake.add_member(guild, "mod", roles=[mod_role])
    other_bot = fake.add_member(guild, "otherbot", bot=True)
    await fake.start()
    yield World(fake, guild, general, owner, alice, bob, carol, mod, mod_role, other_bot)
    await fake.stop()
    assert fake.unknown_routes == [], "the bot called routes the fake Discord does not know"


class BotProcess:
    """The real bot.py, run by tests/launcher.py against the fake Discord."""

    def __init__(self, fake: FakeDiscord, folder: Path, env: dict[str, str]) -> None:
        self.fake = fake
        self.folder = folder
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = folder / "tally.log"
        self._lines: list[str] = []  # this run's output, as it arrives
        self._output = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def database_path(self) -> Path:
        return self.folder / self.env.get("DATABASE_PATH", "data/tally.db")

    async def start(self, wait_ready: bool = True) -> BotProcess:
        self.fake.ready_session = None
        self._lines = []
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LAUNCHER),
            cwd=self.folder,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read_output(self.process.stdout))
        if wait_ready:
            await self.fake.wait_until_ready()
        return self

    async def _read_output(self, stream: asyncio.StreamReader) -> None:
        """Keep the process's output in the log file and tell waiters about each line."""
        with open(self.log_path, "ab") as log:
            async for line in stream:
                log.write(line)
                log.flush()
                async with self._output:
                    self._lines.append(line.decode(errors="replace"))
                    self._output.notify_all()

    async def wait_for_log(self, text: str, timeout: float = 20.0, count: int = 1) -> str:
        """Wait until this run has printed ``count`` lines containing ``text``; return the last."""

        async def waiting() -> str:
            async with self._output:
                while True:
                    found = [line for line in self._lines if text in line]
                    if len(found) >= count:
                        return found[count - 1]
                    await self._output.wait()

        try:
            return await asyncio.wait_for(waiting(), timeout)
        except TimeoutError:
            raise AssertionError(f"the bot did not log {text!r} within {timeout} s") from None

    async def wait(self, timeout: float = 20.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)  # the log is complete once the output is read
        return code

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``signum`` and wait for the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await self.wait(timeout)

    async def kill(self) -> None:
        self.process.kill()
        await self.wait()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
async def tally(world: World, storage: Storage, tmp_path: Path) -> AsyncIterator:
    """A factory: ``await tally(**env)`` starts the real bot; all are stopped afterwards."""
    started: list[BotProcess] = []

    async def start(wait_ready: bool = True, **settings: str) -> BotProcess:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "TALLY_FAKE_DISCORD": world.fake.url,
            "DISCORD_TOKEN": world.fake.token,
            **storage.env,
            "XP_COOLDOWN_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        env.update({key: value for key, value in settings.items() if value is not None})
        for key in [key for key, value in settings.items() if value is None]:
            env.pop(key, None)
        bot = BotProcess(world.fake, tmp_path, env)
        started.append(bot)
        return await bot.start(wait_ready=wait_ready)

    yield start
    for bot in started:
        if bot.process is not None and bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
