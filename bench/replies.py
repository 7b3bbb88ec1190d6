"""How much event-loop CPU does a reply to a crafted 2,000-character argument cost?

Tally echoes member text back in a few replies, through ``chat.plain(text,
limit)``, which cuts the text to ``limit`` characters first and escapes
markdown and mentions afterwards. discord.py's ``escape_markdown`` is a regex
with backtracking alternatives (links ``[...](...)`` and ``<scheme:/...>``):
on crafted text its cost grows with the square, for links with the cube, of
the length. ``chat.plain`` therefore cuts first and escapes with a
character table of its own (linear in the text); the "old" variant below is
discord.py's escaping of the whole text, cut afterwards, as Tally did before.
The target: under 5 ms of loop time for every reply to a 2,000-character
argument.

Part 1, function level. For each crafted 2,000-character input (one letter or
markdown character repeated, ``<``, ``<@&``, ``http://``, ``@everyone ``,
random printable text from a fixed seed, and the worst shapes found by trying
``escape_markdown``: unclosed links such as ``[`` * 600 + ``](`` * 500), the
CPU time (``time.thread_time``) to build each reply text Tally builds from
member text:

  plain(arg)           "I can't find a member called ..." (!level, !transfer ...)
  plain(arg, 50)       help's "No command called ..."
  plain(reason, 500)   a case's reason: the reply to !reason, the mod log
                       embed, !case; ``reason`` is the first 500 characters,
                       as moderation.py stores it
  plain(reason, 200)   one line of !modlog
  old                  the old way, for reference: escape_mentions(escape_markdown(arg))[:100]

all back to back in each round; median and max per input, and old/new.

Part 2, end to end in one process. The real ``Tally`` bot with a real
database file in a temporary folder, fed gateway frames through discord.py's
real receive path (``DiscordWebSocket.received_message``) as bench/ingest.py
does. Each crafted input arrives in MESSAGE_CREATE frames: ``!level <arg>``,
``!help <arg>`` and ``!transfer <arg> 5`` from a member; ``!reason 1 <arg>``
and ``!warn @member <arg>`` (the guild has a mod log channel, so the case is
also posted there as an embed) from a moderator with Manage Messages; and
``!modlog`` and ``!case``, which show reasons stored from that input. The
loop's CPU time per message is ``time.thread_time()`` from the frame's arrival
until every handler discord.py started has finished (the database's own thread
is not counted; the loop's share of talking to it is). Nothing leaves the
process: ``bot.http.request`` is replaced by a coroutine that serialises the
JSON body as discord.py would, checks it against Discord's message and embed
limits (a breach is reported; Discord would answer 400) and answers with a
plausible payload; the gateway's member search (REQUEST_GUILD_MEMBERS, sent
when a name is not in the cache) is answered with an empty GUILD_MEMBERS_CHUNK
frame through the same receive path. The time spent in these stand-ins for
Discord is measured and subtracted. discord.py's gateway rate limiter is reset
before each message: this measures CPU per message, not how many member
searches Discord allows a minute. Frames are sent as JSON text, not through
the transport compression. Two variants run back to back in each round, in
alternating order: "new" (``chat.plain`` as it is) and "old" (the whole text
escaped, then cut, as the call sites did before).

The last line is the worst median loop time of any reply (end to end when
part 2 ran, else the worst function-level median of the new ``plain``).
Timings are printed, never asserted; what the replies say is checked.

    .venv/bin/python bench/replies.py               # the full run
    .venv/bin/python bench/replies.py --quick       # a fast smoke run
    .venv/bin/python bench/replies.py --functions   # part 1 only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import discord  # noqa: E402
from common import (  # noqa: E402
    BOT_ID,
    STAMP,
    as_launched,
    channel_payload,
    event_tasks,
    gateway,
    guild_create,
    message_answer,
    role_payload,
)
from discord import utils  # noqa: E402
from discord.gateway import DiscordWebSocket, GatewayRatelimiter  # noqa: E402

import chat  # noqa: E402
from bot import Tally  # noqa: E402
from config import Settings  # noqa: E402
from db import Database  # noqa: E402

TARGET_MS = 5.0
ARG_LENGTH = 2000
MAX_REASON = 500  # moderation.py stores the first 500 characters of a reason


# -- the crafted inputs ---------------------------------------------------------------


def repeated(unit: str, length: int = ARG_LENGTH) -> str:
    return (unit * (length // len(unit) + 1))[:length]


def crafted_inputs() -> dict[str, str]:
    """Label -> a 2,000-character argument, plus one short argument as the floor."""
    rng = random.Random(20261122)
    printable = string.ascii_letters + string.digits + string.punctuation + " \n"
    inputs = {
        "short (floor)": "nobody",
        "letters": repeated(string.ascii_lowercase),
        "<": repeated("<"),
        "<@&": repeated("<@&"),
        "_": repeated("_"),
        "*": repeated("*"),
        "~": repeated("~"),
        "|": repeated("|"),
        "`": repeated("`"),
        "\\": repeated("\\"),
        "http://": repeated("http://"),
        "@everyone ": repeated("@everyone "),
        "a_": repeated("a_"),
        "random printable": "".join(rng.choice(printable) for _ in range(ARG_LENGTH)),
        # Found by trying escape_markdown on short repeated units and simple shapes.
        # <[^: >]+:/ backtracks over every later character: square of the length.
        "<a": repeated("<a"),
        # \[.+\]\(.+\) with no closing ")": every "[" tries every later "](" and
        # scans to the end of the line from each: cube of the length.
        "[](": repeated("[]("),
        "[ x600 ]( x500": "[" * 600 + "](" * 500 + "a" * 400,
        # the same trap shaped to fill the 500 characters a reason keeps
        "reason trap": "[" * 150 + "](" * 125 + "a" * 1600,
    }
    assert all(len(text) == ARG_LENGTH for label, text in inputs.items() if label != "short (floor)")
    return inputs


# -- part 1: the reply texts alone ----------------------------------------------------


def old_plain(text: str, limit: int = 100) -> str:
    """``plain`` before the change: escape the whole text, then cut, as the call sites did."""
    return utils.escape_mentions(utils.escape_markdown(text))[:limit]


FUNCTIONS: dict[str, Callable[[str], str]] = {
    "plain(arg)": lambda arg: chat.plain(arg),
    "plain(arg, 50)": lambda arg: chat.plain(arg, 50),
    "plain(reason, 500)": lambda arg: chat.plain(arg[:MAX_REASON], MAX_REASON),
    "plain(reason, 200)": lambda arg: chat.plain(arg[:MAX_REASON], 200),
    "old [:100]": lambda arg: old_plain(arg, 100),
}
NEW_FUNCTIONS = [name for name in FUNCTIONS if name.startswith("plain")]


def cpu_samples(fn: Callable[[str], str], arg: str, repeat: int, budget: float = 0.3) -> list[float]:
    """Up to ``repeat`` timed calls, fewer when a call is slow (at least one)."""
    samples = []
    spent = 0.0
    while len(samples) < repeat and (not samples or spent < budget):
        start = time.thread_time()
        fn(arg)
        samples.append(time.thread_time() - start)
        spent += samples[-1]
    return samples


def measure_functions(inputs: dict[str, str], rounds: int, repeat: int) -> dict[tuple[str, str], list[float]]:
    samples: dict[tuple[str, str], list[float]] = {(f, i): [] for f in FUNCTIONS for i in inputs}
    names = list(FUNCTIONS)
    for round_ in range(rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for label, arg in inputs.items():
            for name in order:
                samples[name, label] += cpu_samples(FUNCTIONS[name], arg, repeat)
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}" if seconds < 0.01 else f"{seconds * 1000:.1f}"


def print_function_table(inputs: dict[str, str], samples: dict[tuple[str, str], list[float]]) -> None:
    print("\nPart 1: building the reply text, ms of CPU, median / max")
    header = f"{'input (2,000 chars)':<18}" + "".join(f"{name:>20}" for name in FUNCTIONS) + f"{'old/new':>9}"
    print(header)
    print("-" * len(header))
    for label in inputs:
        cells = []
        for name in FUNCTIONS:
            values = samples[name, label]
            cells.append(f"{ms(statistics.median(values)) + ' / ' + ms(max(values)):>20}")
        ratio = statistics.median(samples["old [:100]", label]) / statistics.median(samples["plain(arg)", label])
        print(f"{label:<18}" + "".join(cells) + f"{ratio:>8.0f}x")


# -- part 2: the real bot, in process ---------------------------------------------------

GUILD_ID = 100000000000000000
OWNER_ID = 200000000000000001
MODERATOR_ID = 200000000000000002
MEMBER_ID = 200000000000000003
TARGET_BASE = 300000000000000000  # the member warned with input i is TARGET_BASE + i
FILLER_BASE = 600000000000000000
CHANNEL_ID = 400000000000000001
MODLOG_CHANNEL_ID = 400000000000000002
DM_BASE = 450000000000000000
MOD_ROLE_ID = 500000000000000001
BOT_ROLE_ID = 500000000000000002
VIEW_SEND_EMBED = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16)
MANAGE_MESSAGES = 1 << 13
CORRECTED_CASE = 1  # the case every !reason corrects

# command -> (who sends it, the text with {arg}, {target}, {case} filled in, what the reply must start with)
COMMANDS = {
    "!level": (MEMBER_ID, "!level {arg}", ("I can't find a member called ",)),
    "!help": (MEMBER_ID, "!help {arg}", ("No command called ",)),
    "!transfer": (MEMBER_ID, "!transfer {arg} 5", ("I can't find a member called ", "That isn't a valid `member`")),
    "!reason": (MODERATOR_ID, "!reason {corrected} {arg}", (f"Case #{CORRECTED_CASE}'s reason is now: ",)),
    "!warn": (MODERATOR_ID, "!warn <@{target}> {arg}", ("Case #",)),
    "!modlog": (MODERATOR_ID, "!modlog {target}", ("embed:Mod log: ",)),
    "!case": (MODERATOR_ID, "!case {case}", ("embed:Case #",)),
}

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
CONTENT_LIMIT = 2000
EMBED_LIMITS = {"title": 256, "description": 4096, "field name": 256, "field value": 1024, "footer": 2048}
EMBED_TOTAL = 6000


def user_payload(user_id: int, name: str, bot: bool = False) -> dict:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": None if bot else name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member_payload(user_id: int, name: str, roles: list[int], bot: bool = False) -> dict:
    return {
        "user": user_payload(user_id, name, bot),
        "roles": [str(r) for r in roles],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "avatar": None,
        "premium_since": None,
        "pending": False,
        "communication_disabled_until": None,
    }


def setup_frames(targets: int) -> list[str]:
    """READY and one GUILD_CREATE: owner, moderator, member, Tally, the targets and some filler."""
    members = [
        member_payload(OWNER_ID, "owner", []),
        member_payload(MODERATOR_ID, "moderator", [MOD_ROLE_ID]),
        member_payload(MEMBER_ID, "member", []),
        member_payload(BOT_ID, "Tally", [BOT_ROLE_ID], bot=True),
    ]
    members += [member_payload(TARGET_BASE + i, f"target{i}", []) for i in range(targets)]
    members += [member_payload(FILLER_BASE + i, f"member_{i}", []) for i in range(250)]
    ready = {
        "op": 0,
        "t": "READY",
        "s": 1,
        "d": {
            "v": 10,
            "user": user_payload(BOT_ID, "Tally", bot=True),
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "bench",
            "shard": [0, 1],  # what Discord sends a sharded IDENTIFY
            "resume_gateway_url": "wss://gateway.invalid",
            "application": {"id": str(BOT_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
        },
    }
    guild = guild_create(
        2,
        GUILD_ID,
        "Bench Server",
        OWNER_ID,
        roles=[
            role_payload(GUILD_ID, "@everyone", VIEW_SEND_EMBED, 0),
            role_payload(MOD_ROLE_ID, "Moderators", MANAGE_MESSAGES, 1),
            role_payload(BOT_ROLE_ID, "Tally", 0, 2),
        ],
        members=members,
        member_count=len(members),
        channels=[channel_payload(CHANNEL_ID, "general", 0), channel_payload(MODLOG_CHANNEL_ID, "mod-log", 1)],
        large=False,
    )
    return [json.dumps(ready), json.dumps(guild)]


class FakeDiscord:
    """Stands in for Discord's REST API and gateway socket; keeps what Tally posted."""

    def __init__(self, ws: DiscordWebSocket) -> None:
        self.ws = ws
        self.closed = False  # the socket is open as far as discord.py can tell
        self.posts: list[tuple[int, dict]] = []  # (channel ID, JSON body)
        self.breaches: list[str] = []
        self.own_time = 0.0  # CPU spent here, subtracted from the bot's
        self.deliveries: set[asyncio.Task] = set()
        self._ids = iter(range(700000000000000000, 800000000000000000))
        self._sequence = 1000

    # discord.py's gateway writes here (DiscordWebSocket.send -> socket.send_str)
    async def send_str(self, data: str) -> None:
        start = time.thread_time()
        payload = json.loads(data)
        if payload["op"] == DiscordWebSocket.REQUEST_MEMBERS:
            self._sequence += 1
            chunk = {
                "op": 0,
                "t": "GUILD_MEMBERS_CHUNK",
                "s": self._sequence,
                "d": {
                    "guild_id": payload["d"]["guild_id"],
                    "members": [],  # nobody's name starts with a crafted argument
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "not_found": [],
                    "nonce": payload["d"].get("nonce"),
                },
            }
            task = asyncio.create_task(self._answer(json.dumps(chunk)), name="bench: chunk")
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)
        self.own_time += time.thread_time() - start

    async def _answer(self, frame: str) -> None:
        # After a millisecond, as over a network: discord.py starts waiting for
        # the answer only once its request is sent, and misses one that is faster.
        await asyncio.sleep(0.001)
        await self.ws.received_message(frame)

    async def close(self, code: int = 1000) -> None:
        self.closed = True

    # replaces bot.http.request
    async def request(self, route: discord.http.Route, *, files=None, form=None, **kwargs) -> dict | None:
        body = kwargs.get("json")
        if body is not None:
            utils._to_json(body)  # what HTTPClient.request does with it, on the bot's time
        start = time.thread_time()
        try:
            if route.method == "POST" and route.path == "/channels/{channel_id}/messages":
                self.posts.append((route.channel_id, body))
                self._check_limits(body)
                return self._message(route.channel_id, body)
            if route.method == "POST" and route.path == "/users/@me/channels":
                user_id = int(body["recipient_id"])
                return {
                    "id": str(DM_BASE + user_id % 10**9),
                    "type": 1,
                    "last_message_id": None,
                    "recipients": [user_payload(user_id, "someone")],
                }
            raise AssertionError(f"the benchmark did not expect {route.method} {route.path}")
        finally:
            self.own_time += time.thread_time() - start

    def _message(self, channel_id: int, body: dict) -> dict:
        author = user_payload(BOT_ID, "Tally", bot=True)
        return message_answer(next(self._ids), channel_id, author, body.get("content") or "", body.get("embeds") or [])

    def _check_limits(self, body: dict) -> None:
        content = body.get("content") or ""
        if len(content) > CONTENT_LIMIT:
            self.breaches.append(f"content of {len(content):,} characters (limit {CONTENT_LIMIT:,})")
        for embed in body.get("embeds") or []:
            parts = {
                "title": [embed.get("title") or ""],
                "description": [embed.get("description") or ""],
                "field name": [f["name"] for f in embed.get("fields", [])],
                "field value": [f["value"] for f in embed.get("fields", [])],
                "footer": [embed.get("footer", {}).get("text") or ""],
            }
            for part, texts in parts.items():
                for text in texts:
                    if len(text) > EMBED_LIMITS[part]:
                        self.breaches.append(f"embed {part} of {len(text):,} characters (limit {EMBED_LIMITS[part]:,})")
            total = sum(len(text) for texts in parts.values() for text in texts)
            if total > EMBED_TOTAL:
                self.breaches.append(f"embed of {total:,} characters in all (limit {EMBED_TOTAL:,})")


class Harness:
    """One Tally bot on a real database, fed frames through discord.py's receive path."""

    def __init__(self, folder: Path, inputs: dict[str, str]) -> None:
        self.folder = folder
        self.inputs = inputs
        self.cases: dict[str, int] = {}  # input -> a case whose reason (and earlier reasons) came from it

    async def start(self) -> None:
        settings = Settings(
            token="bench" * 10,
            database_path=self.folder / "tally.db",
            default_prefix="!",
            xp_per_message=5,
            xp_cooldown_seconds=60,
            xp_flush_seconds=3600.0,  # no flush during the run: commands earn no XP anyway
            level_curve="linear",
            log_level="WARNING",
        )
        self.db = db = await Database.open(settings.database_path)
        await db.set_setting(GUILD_ID, "modlog", str(MODLOG_CHANNEL_ID))  # as !settings modlog stores it
        await db.open_case(GUILD_ID, "warn", TARGET_BASE, "target0", MODERATOR_ID, "spam")  # CORRECTED_CASE
        for i, (label, arg) in enumerate(self.inputs.items()):
            reason = arg[:MAX_REASON]
            for _ in range(10):  # a full !modlog page of this input's reasons
                case = await db.open_case(GUILD_ID, "warn", TARGET_BASE + i, f"target{i}", MODERATOR_ID, reason)
            for _ in range(3):  # and three earlier reasons on !case
                await db.correct_reason(GUILD_ID, case.number, reason, MODERATOR_ID)
            self.cases[label] = case.number

        self.bot = bot = Tally(settings, db)
        await bot._async_setup_hook()
        await bot.setup_hook()
        # What launch_shards sets once Discord recommends one shard: shard 0,
        # whose gateway the member searches go through.
        self.ws = ws = gateway(bot, as_launched(bot))
        bot._connection._get_websocket = lambda guild_id=None, *, shard_id=None: ws
        self.discord = FakeDiscord(ws)
        ws.socket = self.discord
        bot.http.request = self.discord.request
        for frame in setup_frames(len(self.inputs)):
            await ws.received_message(frame)
        await asyncio.wait_for(bot.wait_until_ready(), timeout=30)
        await self.drain()

    async def stop(self) -> None:
        await self.bot.close()  # the gateway, then pending XP, then the database

    def frame(self, command: str, label: str, message_id: int) -> str:
        author, template, _ = COMMANDS[command]
        i = list(self.inputs).index(label)
        content = template.format(
            arg=self.inputs[label], target=TARGET_BASE + i, case=self.cases[label], corrected=CORRECTED_CASE
        )
        name = "moderator" if author == MODERATOR_ID else "member"
        mentions = []
        if command == "!warn":
            target = member_payload(TARGET_BASE + i, f"target{i}", [])
            mentions = [{**target.pop("user"), "member": target}]
        member = member_payload(author, name, [MOD_ROLE_ID] if author == MODERATOR_ID else [])
        del member["user"]
        payload = {
            "op": 0,
            "t": "MESSAGE_CREATE",
            "s": 100 + message_id,
            "d": {
                "id": str(10**18 + message_id),
                "type": 0,
                "channel_id": str(CHANNEL_ID),
                "guild_id": str(GUILD_ID),
                "author": user_payload(author, name),
                "member": member,
                "content": content,
                "timestamp": STAMP,
                "edited_timestamp": None,
                "tts": False,
                "mention_everyone": False,
                "mentions": mentions,
                "mention_roles": [],
                "attachments": [],
                "embeds": [],
                "pinned": False,
                "flags": 0,
                "components": [],
                "nonce": str(message_id),
            },
        }
        return json.dumps(payload)

    async def drain(self) -> None:
        """Wait until every handler discord.py started, and every frame Discord owes, is done."""
        while tasks := event_tasks() + list(self.discord.deliveries):
            await asyncio.wait(tasks)

    async def send(self, frame: str) -> float:
        """The loop's CPU seconds for one message, from its frame to the last handler's end."""
        self.ws._rate_limiter = GatewayRatelimiter()
        self.discord.own_time = 0.0
        start = time.thread_time()
        await self.ws.received_message(frame)
        await self.drain()
        return time.thread_time() - start - self.discord.own_time

    def check_reply(self, command: str, label: str, first_post: int) -> None:
        """The reply in the command's channel is the one the command should give."""
        replies = [body for channel_id, body in self.discord.posts[first_post:] if channel_id == CHANNEL_ID]
        assert len(replies) == 1, f"{command} {label!r}: {len(replies)} replies"
        body = replies[0]
        text = body.get("content") or ""
        if not text and body.get("embeds"):
            text = "embed:" + body["embeds"][0].get("title", "")
        expected = COMMANDS[command][2]
        assert text.startswith(expected), f"{command} {label!r} answered {text[:80]!r}"


def use_plain(fn: Callable[..., str]) -> None:
    """Make every cog use ``fn`` as its ``plain``."""
    for module in ("bot", "moderation", "economy"):
        assert hasattr(sys.modules[module], "plain"), f"{module}.py no longer uses chat.plain"
        sys.modules[module].plain = fn


async def measure_end_to_end(inputs: dict[str, str], rounds: int) -> tuple[dict, list[str]]:
    variants = {"new": chat.plain, "old": old_plain}
    samples: dict[tuple[str, str, str], list[float]] = {
        (v, c, i): [] for v in variants for c in COMMANDS for i in inputs
    }
    breaches: set[str] = set()
    with tempfile.TemporaryDirectory() as folder:
        harness = Harness(Path(folder), inputs)
        await harness.start()
        frames = {}
        for n, (command, label) in enumerate((c, i) for c in COMMANDS for i in inputs):
            frames[command, label] = harness.frame(command, label, n)
        try:
            for fn in variants.values():  # warm up: DM channels, regex caches
                use_plain(fn)
                for command in COMMANDS:
                    await harness.send(frames[command, "short (floor)"])
            for round_ in range(1, rounds + 1):
                order = list(variants) if round_ % 2 else list(variants)[::-1]
                line = []
                for variant in order:
                    use_plain(variants[variant])
                    worst = 0.0
                    for label in inputs:
                        for command in COMMANDS:
                            first_post = len(harness.discord.posts)
                            harness.discord.breaches.clear()
                            cpu = await harness.send(frames[command, label])
                            harness.check_reply(command, label, first_post)
                            samples[variant, command, label].append(cpu)
                            worst = max(worst, cpu)
                            if variant == "new":
                                breaches.update(f"{command} with {label!r}: {b}" for b in harness.discord.breaches)
                    line.append(f"{variant} worst {worst * 1000:.1f} ms")
                print(f"round {round_}: " + ", ".join(line), flush=True)
        finally:
            use_plain(chat.plain)
            await harness.stop()
    return samples, sorted(breaches)


def print_end_to_end(inputs: dict[str, str], samples: dict, rounds: int) -> None:
    width = 17
    for variant, title in (
        ("new", "new plain: ms of loop CPU per message, median / max"),
        ("old", "old plain: ms of loop CPU per message, median, and old/new"),
    ):
        print(f"\nPart 2, {title} ({rounds} rounds)")
        header = f"{'argument':<18}" + "".join(f"{c:>{width}}" for c in COMMANDS)
        print(header)
        print("-" * len(header))
        for label in inputs:
            cells = []
            for command in COMMANDS:
                values = samples[variant, command, label]
                if variant == "new":
                    cell = f"{ms(statistics.median(values))} / {ms(max(values))}"
                else:
                    ratio = statistics.median(values) / statistics.median(samples["new", command, label])
                    cell = f"{ms(statistics.median(values))} {ratio:.1f}x"
                cells.append(f"{cell:>{width}}")
            print(f"{label:<18}" + "".join(cells))


# -- the run ------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10, help="part 1: samples a round per figure (fewer when slow)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 samples")
    parser.add_argument("--functions", action="store_true", help="part 1 only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeat = 2, 3
    logging.basicConfig(level=logging.ERROR)

    print(
        f"Python {platform.python_version()}, discord.py {discord.__version__}, {platform.machine()}, "
        f"{platform.system()}, {os.cpu_count()} CPUs; CPU time by time.thread_time()"
    )
    inputs = crafted_inputs()
    function_samples = measure_functions(inputs, args.rounds, args.repeat)
    print_function_table(inputs, function_samples)
    crafted = [label for label in inputs if label != "short (floor)"]
    worst_fn = max(
        ((statistics.median(function_samples[f, i]), f, i) for f in NEW_FUNCTIONS for i in crafted),
    )
    print(f"worst new text: {worst_fn[1]} on {worst_fn[2]!r}, {ms(worst_fn[0])} ms median")

    worst = worst_fn[0]
    if not args.functions:
        print("\nPart 2: the real bot, in process")
        samples, breaches = await measure_end_to_end(inputs, args.rounds)
        print_end_to_end(inputs, samples, args.rounds)
        if breaches:
            print("\nReplies Discord would refuse (new plain; the stand-in answered them anyway):")
            for breach in breaches:
                print(f"  {breach}")
        else:
            print("\nNo reply went past Discord's message or embed limits (new plain).")
        medians = [(statistics.median(samples["new", c, i]), c, i) for c in COMMANDS for i in crafted]
        worst, command, label = max(medians)
        floor = max(statistics.median(samples["new", c, "short (floor)"]) for c in COMMANDS)
        single = max(max(samples["new", c, i]) for c in COMMANDS for i in crafted)
        print(
            f"\nworst end to end (new): {command} with {label!r}, {ms(worst)} ms median; "
            f"the slowest single message {ms(single)} ms; the slowest command with a short argument {ms(floor)} ms"
        )
    print(f"worst reply: {ms(worst)} ms (target < {TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
