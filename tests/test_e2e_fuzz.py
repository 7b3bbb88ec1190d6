"""End to end fuzzing: every command, fed odd arguments, still gets a safe answer.

Each command is sent, mostly by the moderator (who has every permission) and
sometimes by a plain member, with arguments drawn from a fixed seed: numbers
past SQLite's and Discord's integer limits, control and invisible characters,
whitespace, markdown, mention-like text, and messages at Discord's
2,000-character limit. For every message the bot must answer; the answer must
not be the unexpected-error apology; no post may ping anyone; and Discord must
not refuse anything the bot posts. Afterwards the bot must stop cleanly with
no traceback in its log.

Failures are collected, not stopped at: each test lists every case that went
wrong as ``author: command 'arguments': problem`` (member IDs differ from
run to run; the messages are otherwise the same). Change SEED to explore
other cases.

Kick and ban are never pointed at a member they could remove: their targets
are non-members, unknown IDs and names, or members the bot must refuse (the
owner, the moderator themselves, the bot). Each test that fuzzes them also
checks that Discord's audit log stayed empty.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.conftest import BotProcess, World
from tests.fake_discord import Post, User
from tests.helpers import seed_xp

SEED = 20240611
REPLY_TIMEOUT = 5.0  # seconds: a healthy reply takes milliseconds, even on a busy 2-core machine
MESSAGE_LIMIT = 2000  # Discord's limit on a message's content, for members and bots alike
NO_PINGS = {"users": [], "roles": [], "everyone": False}
APOLOGY = "Sorry, something went wrong"
POST = re.compile(r"/channels/[0-9]+/messages")

# Integers at the edges: SQLite stores signed 64-bit integers, snowflakes are unsigned 64-bit.
EDGE_NUMBERS = (
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    "99999999999999999999",
    str(-(2**63) - 1),
    "0",
)
ODD_NUMBERS = (
    "-1",
    "1",
    "2",
    "-0",
    "+7",
    "007",
    str(2**31),
    str(2**53 + 1),
    str(2**64 + 1),
    "-99999999999999999999",
    "1" * 25,
    "1000000001",
    "1e9",
    "0x10",
    "1_000",
    "1,000",
    "2.5",
    "NaN",
    "inf",
    "\uff11\uff12",  # fullwidth digits: Python's int() accepts them
    "\u0663",  # ARABIC-INDIC DIGIT THREE: so does this
)
CONTROL = (
    "\x00",
    "a\x00b",
    "\x00\x01\x02\x03",
    "\x1b[31mred\x1b[0m",
    "\x7f",
    "\x08\x07\x0c",
    "\u200b",
    "\u200b\u200b\u200b",
    "\u202eevil\u202c",
    "\ufeff",
    "\ufeffbom",
    "\u2028\u2029",
    "e\u0301\u0301\u0301\u0301",
    "\U0001f600",
)
WHITESPACE = (" ", "   ", "\t", "\n\n", "\r\n", " \t\n\r ", "\u00a0", "\u2003", "\u3000")
MARKDOWN = (
    "**bold** __under__ *it* ~~gone~~ ||spoiler||",
    "`code` and ```py\nprint('x')\n```",
    "> quote\n>>> block quote",
    "# Heading\n-# subtext\n- item",
    "[click me](https://example.com)",
    "\\*escaped\\*",
    "***___~~||``",
    '"unclosed quote',
    "\u201csmart\u201d \u2018quotes\u2019",
    "'single'",
    "\\",
    '\\"',
    "<t:9999999999999999:R>",
    "<:emoji:123>",
    "<a:anim:99999999999999999999>",
)


def mention_like(world: World) -> tuple[str, ...]:
    role, bot = world.mod_role.id, world.fake.bot_user.id
    return (
        "@everyone",
        "@here",
        "@Everyone",
        f"<@&{role}>",
        f"<@&{role}> @here @everyone",
        "<@123>",
        "<@!123>",
        "<#123>",
        "<@&123>",
        f"<@{2**64}>",
        "<@99999999999999999999>",
        f"<#{2**64}>",
        "<@" + "9" * 30 + ">",
        f"<@{bot}",
        "@\u200beveryone",
        "<@>",
        "<@&>",
        "everyone",
        "@everyone#0",
    )


def long_units(world: World) -> tuple[str, ...]:
    """What 2,000-character arguments are made of, one unit repeated."""
    return (
        "x",
        "*_~`|>#-",
        "@everyone ",
        "@here",
        f"<@&{world.mod_role.id}>",
        "<@123>",
        "\u200b",
        "\u202e",
        "\x00",
        "\U0001d54f",
        "\u00f1",
        "a b ",
        "\n",
        "9",
        '"',
        "\\",
    )


def near_misses(world: World) -> tuple[str, ...]:
    """Almost a member: the wrong case, a stray @, a wrong discriminator, an ID cut short."""
    return (
        "CAROL",
        "@alice",
        "alice#1234",
        "bob#",
        f"<@!{str(world.bob.id)[:-1]}>",
        str(world.carol.id)[:-1],
        "alice ",
    )


ALPHABET = "aZ09 *_~`|>\\\"'@#<>&!:\n\t\x00\x1b\u200b\u202e\ufeff\u3000\u00e9\U0001f600"


class Fuzzer:
    """Arguments drawn from one seeded random stream, so every run sends the same messages."""

    def __init__(self, world: World, group: str, members: Sequence[str]) -> None:
        self.rng = random.Random(f"{SEED}:{group}")
        self.members = list(members)  # references that find real members this group may name
        self.near_misses = near_misses(world)
        self.mentions = mention_like(world)
        self.units = long_units(world)

    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(options)

    def maybe(self, value: str, chance_of_none: float = 0.2) -> str | None:
        return None if self.rng.random() < chance_of_none else value

    def number(self) -> str:
        roll = self.rng.random()
        if roll < 0.45:
            return self.pick(EDGE_NUMBERS + ODD_NUMBERS)
        if roll < 0.65:
            return str(self.rng.choice((1, -1)) * self.rng.randrange(10**19, 10**40))
        if roll < 0.85:
            return str(self.rng.randrange(1, 30))  # a plausible value, so the rest of the command runs
        return self.text()

    def long(self) -> str:
        """A 2,000-character argument (the message is fitted to the limit later)."""
        if self.rng.random() < 0.3:
            return "".join(self.rng.choice(ALPHABET) for _ in range(MESSAGE_LIMIT))
        unit = self.pick(self.units)
        return (unit * (MESSAGE_LIMIT // len(unit) + 1))[:MESSAGE_LIMIT]

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.15:
            return self.long()
        if roll < 0.3:  # several odd pieces at once
            return " ".join(self.text() for _ in range(self.rng.randint(2, 4)))
        return self.pick(self.rng.choice((CONTROL, WHITESPACE, MARKDOWN, self.mentions, ODD_NUMBERS)))

    def words(self) -> str:
        """A reason or other free text."""
        return self.long() if self.rng.random() < 0.2 else self.text()

    def member(self, valid: bool = False) -> str:
        """A reference to a real member (always, when ``valid``), else a near miss or odd text."""
        roll = self.rng.random()
        if valid or roll < 0.5:
            return self.pick(self.members)
        return self.pick(self.near_misses) if roll < 0.7 else self.text()


def fit(command: str, parts: Sequence[str | None]) -> tuple[str, str]:
    """``(message, arguments)``: ``!command`` and its arguments, cut to Discord's limit.

    The longest argument is the one cut, so short ones (a number after a
    long name) survive.
    """
    kept = [part for part in parts if part]
    while len(message := " ".join([f"!{command}", *kept])) > MESSAGE_LIMIT:
        longest = max(range(len(kept)), key=lambda i: len(kept[i]))
        kept[longest] = kept[longest][: max(0, len(kept[longest]) - (len(message) - MESSAGE_LIMIT))]
    return message, message[len(command) + 2 :]


def shown(text: str) -> str:
    """An argument as a report shows it: its repr, cut to 80 characters."""
    text = repr(text)
    return text if len(text) <= 80 else text[:79] + "\u2026"


def discord_would_refuse(post: Post) -> list[str]:
    """Which of Discord's embed limits a post breaks (the fake checks only the content's length)."""
    problems = []
    for embed in post.embeds:
        texts = [
            ("title", embed.get("title", ""), 256),
            ("description", embed.get("description", ""), 4096),
            ("footer", embed.get("footer", {}).get("text", ""), 2048),
        ]
        fields = embed.get("fields", [])
        for f in fields:
            texts += [
                (f"field name {f['name'][:30]!r}", f["name"], 256),
                (f"field {f['name'][:30]!r}", f["value"], 1024),
            ]
            if not f["name"].strip() or not f["value"].strip():
                problems.append(f"embed field {f['name'][:30]!r} is empty")
        problems += [
            f"embed {what} is {len(text):,} characters (limit {limit:,})"
            for what, text, limit in texts
            if len(text) > limit
        ]
        total = sum(len(text) for what, text, _ in texts if not what.startswith("field name")) + sum(
            len(f["name"]) for f in fields
        )
        if total > 6000:
            problems.append(f"embed is {total:,} characters in all (limit 6,000)")
        if len(fields) > 25:
            problems.append(f"embed has {len(fields)} fields (limit 25)")
    return problems


def log_problems(log: str) -> list[str]:
    """What the bot's log says went wrong: commands that failed, and the tracebacks' last lines."""
    problems = []
    failed = sorted({match.group(1) for match in re.finditer(r"command (.+?) failed in guild", log)})
    if failed:
        problems.append(f"bot log: 'failed in guild' for: {', '.join(failed)}")
    if count := log.count("Traceback"):
        errors = sorted({line[:120] for line in re.findall(r"^(?:\w+\.)*\w*(?:Error|Exception)\b.*$", log, re.M)})
        problems.append(f"bot log: {count} tracebacks, ending in: {' | '.join(errors) or 'see the log'}")
    return problems


Make = Callable[[Fuzzer, str | None], Sequence[str | None]]


@dataclass
class Case:
    """One command to fuzz: ``make(fuzzer, edge)`` builds its arguments.

    ``make`` is called once per value in ``edges`` (each a deterministic
    case, sent by the moderator), then ``count`` times with ``None`` for
    random cases (sent by the moderator or alice). With ``authors``, those
    take turns instead.
    """

    command: str
    make: Make
    count: int = 8
    edges: Sequence[str] = ()
    authors: Sequence[User] = ()  # taken in turn (commands with a per-member cooldown); else mod or alice


HELP_END = "for more about one command."  # the last line of a command list's last page


@dataclass
class FuzzRun:
    """Sends the cases of one test and collects what went wrong."""

    world: World
    failures: list[str] = field(default_factory=list)
    sent: int = 0

    def _post_requests(self, since: int) -> int:
        """Requests to post a message (in any channel, DMs too) since request number ``since``."""
        return sum(
            1 for method, path, _ in self.world.fake.requests[since:] if method == "POST" and POST.fullmatch(path)
        )

    def _reply(self, posts_before: int, paged: bool = False) -> Post | None:
        """The bot's first post in #general since ``posts_before``.

        A refused reply is not the end: the error handler then apologises, and
        that apology belongs to this message, not to the next one. With
        ``paged`` (``help``), a command list is an answer once its last page,
        the one that ends with the help trailer, has arrived.
        """
        general = self.world.general.id
        posts = [post for post in self.world.fake.posts[posts_before:] if post.channel_id == general]
        if not posts:
            return None
        if paged and posts[0].content.startswith("**") and not any(p.content.endswith(HELP_END) for p in posts):
            return None
        return posts[0]

    async def send(self, author: User, command: str, arguments: str, message: str) -> Post | None:
        """Send ``message``, wait for the answer, and note every problem with it."""
        fake = self.world.fake
        posts_before, requests_before = len(fake.posts), len(fake.requests)
        self.sent += 1
        await self.world.say(author, message)
        try:
            reply = await fake.wait_for(
                lambda: self._reply(posts_before, paged=command == "help"), REPLY_TIMEOUT, f"an answer to {command}"
            )
        except AssertionError:
            reply = None
        problems = []
        if reply is None:
            problems.append(f"no answer within {REPLY_TIMEOUT:.0f} s")
        elif APOLOGY in reply.content:
            problems.append("the unexpected-error apology")
        new_posts = fake.posts[posts_before:]
        if refused := self._post_requests(requests_before) - len(new_posts):
            problems.append(f"Discord refused {refused} post(s) by the bot")
        for post in new_posts:
            if post.pings != NO_PINGS:
                problems.append(f"a post pinged {post.pings}: {post.content[:60]!r}")
            problems += [f"Discord would refuse a post: {problem}" for problem in discord_would_refuse(post)]
        self.failures += [f"{author.username}: {command} {shown(arguments)}: {problem}" for problem in problems]
        return reply

    async def fuzz(self, fuzzer: Fuzzer, cases: Sequence[Case], allowed: Callable[[str], bool] = lambda _: True):
        """Send every case; ``allowed(message)`` may veto a generated message (then another is drawn)."""
        world = self.world
        for case in cases:
            turns = itertools.cycle(case.authors) if case.authors else None
            for edge in [*case.edges, *[None] * case.count]:
                for _ in range(50):
                    message, arguments = fit(case.command, case.make(fuzzer, edge))
                    if allowed(message):
                        break
                else:
                    raise AssertionError(f"could not draw an allowed message for {case.command}")
                if turns is not None:
                    author = next(turns)
                elif edge is not None:
                    author = world.mod
                else:
                    author = world.alice if fuzzer.rng.random() < 0.3 else world.mod
                reply = await self.send(author, case.command, arguments, message)
                if case.command == "prefix" and author == world.mod:
                    await self._restore_prefix(reply)

    async def _restore_prefix(self, reply: Post | None) -> None:
        """After a prefix was set (or the attempt went wrong), set it back with a mention of the bot."""
        if reply is not None and not reply.content.startswith(("Prefix set to", APOLOGY)):
            return
        bot = self.world.fake.bot_user.id
        answer = await self.send(self.world.mod, "prefix", "reset", f"<@{bot}> prefix reset")
        if answer is None or answer.content != "Prefix reset to `!`.":
            raise AssertionError(
                "could not reset the prefix, so the remaining cases cannot run:\n" + "\n".join(self.failures)
            )

    async def finish(self, bot: BotProcess) -> None:
        """Stop the bot, check its exit and its log, and report every failure at once."""
        code = await bot.stop()
        if code != 0:
            self.failures.append(f"the bot exited with code {code}")
        self.failures += log_problems(bot.log)
        assert not self.failures, f"{len(self.failures)} problems in {self.sent} fuzzed messages:\n" + "\n".join(
            self.failures
        )


def add_crowd(world: World, count: int = 9) -> list[User]:
    """Plain members to take turns with commands that have a per-member cooldown."""
    return [world.fake.add_member(world.guild, f"reader{i}") for i in range(1, count + 1)]


def add_pranksters(world: World) -> list[str]:
    """Members whose names look like mentions and markdown; returns the names that find them."""
    fake, guild, role = world.fake, world.guild, world.mod_role.id
    fake.add_member(guild, "@everyone", nick="@here")
    fake.add_member(guild, "rolename", nick=f"<@&{role}>")
    fake.add_member(guild, "**md**", nick="__*~`||>")
    return ["@everyone", "@here", f"<@&{role}>", "**md**", "__*~`||>"]


def references(world: World) -> list[str]:
    """Ways to name real members that find them: mention, nickname mention, ID, name, name#0."""
    return [
        f"<@{world.alice.id}>",
        f"<@!{world.bob.id}>",
        str(world.carol.id),
        "alice",
        "bob#0",
        "otherbot",
        "owner",
        "mod",
        f"<@{world.fake.bot_user.id}>",
    ]


# Argument builders: ``(fuzzer, edge) -> parts``; an edge is the deterministic value of a case.


def member_or_nothing(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [edge or f.maybe(f.member())]


def page_or_nothing(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [edge or f.maybe(f.number())]


def text_or_nothing(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [edge or f.maybe(f.text(), 0.3)]


def member_and_number(f: Fuzzer, edge: str | None) -> list[str | None]:
    """``<member> <number>``: for an edge number the member is real, so the number is what is tested."""
    return [f.member(valid=edge is not None), edge or f.number()]


def member_number_and_reason(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [*member_and_number(f, edge), f.maybe(f.words(), 0.5)]


def member_and_reason(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [f.member(), f.maybe(f.words())]


def member_and_page(f: Fuzzer, edge: str | None) -> list[str | None]:
    return [f.member(valid=edge is not None), edge or f.maybe(f.number())]


def number_and_text(f: Fuzzer, edge: str | None) -> list[str | None]:
    """``<number> <text>``: for an edge number the text is never blank, so the number is what is tested."""
    if edge is None:
        return [f.number(), f.maybe(f.words())]
    text = f.words()
    return [edge, text if text.strip() else "a new reason"]


async def test_fuzzed_level_leaderboard_and_help_commands_answer_safely(world, tally, storage):
    crowd = add_crowd(world)
    pranks = add_pranksters(world)
    board = [world.alice, world.bob, *crowd[:3]]
    rows = [(user.id, 10 * (i + 1), user.username) for i, user in enumerate(board)]
    rows += [(10**17 + i, 5 + i, name) for i, name in enumerate(["@everyone gone", "**left**", "<@&1>", "\u202eevil"])]
    rows += [(10**17 + 10 + i, 1, f"old{i}") for i in range(6)]  # 15 on the board: two pages
    await seed_xp(storage, world.guild.id, rows)
    bot = await tally()
    fuzzer = Fuzzer(world, "leveling", [*references(world), *pranks])
    long_word = "x" * MESSAGE_LIMIT
    help_edges = ("Leveling", "Economy", "Moderation", f"coins {long_word}", f"leaderboard {'*' * MESSAGE_LIMIT}")
    help_edges += ("coins @everyone", "coins give extra", long_word, "\x00", f"<@&{world.mod_role.id}>")
    topics = ("coins", "coins give", "leaderboard", "leaderboard coins", "level", "prefix", "modlog", "nosuch")

    def help_topic(f: Fuzzer, edge: str | None) -> list[str | None]:
        return [edge] if edge else [f.maybe(f.pick(topics), 0.3), f.maybe(f.text(), 0.4)]

    run = FuzzRun(world)
    await run.fuzz(
        fuzzer,
        [
            Case("level", member_or_nothing, count=6, edges=pranks),
            Case("rank", member_or_nothing, count=6),
            Case("leaderboard", page_or_nothing, count=2, edges=EDGE_NUMBERS, authors=crowd),
            Case("lb", page_or_nothing, count=5, authors=crowd[3:] + crowd[:3]),
            Case("top", page_or_nothing, count=5, authors=crowd[6:] + crowd[:6]),
            Case("leaderboard coins", page_or_nothing, count=2, edges=EDGE_NUMBERS, authors=crowd),
            Case("help", help_topic, count=6, edges=help_edges),
        ],
    )
    await run.finish(bot)


async def test_fuzzed_prefix_changes_answer_safely_and_never_strand_the_server(world, tally):
    bot = await tally()
    edges = ("\x00", "\x1b", "\u200b", "\u202e", "\ufeff", "\u3000", "0x10", "1e9", "1_000", "**", "||", "\\")
    edges += ("#", "-#", ">", "RESET", "@here", f"<@&{world.mod_role.id}>", "t!", "x" * MESSAGE_LIMIT)
    run = FuzzRun(world)
    await run.fuzz(Fuzzer(world, "prefix", []), [Case("prefix", text_or_nothing, count=12, edges=edges)])
    post = await run.send(world.alice, "prefix", "", "!prefix")
    if post is not None and not post.content.startswith("My prefix here is `!`"):
        run.failures.append(f"after fuzzing, the prefix is not `!`: {post.content!r}")
    await run.finish(bot)


async def test_fuzzed_coin_commands_answer_safely(world, tally):
    crowd = add_crowd(world)
    pranks = add_pranksters(world)
    bot = await tally()
    run = FuzzRun(world)
    for name, amount in [("alice", 500), ("bob", 40), ("@everyone", 7), (f"<@&{world.mod_role.id}>", 3)]:
        await run.send(world.mod, "coins give", f"{name} {amount}", f"!coins give {name} {amount}")
    fuzzer = Fuzzer(world, "economy", [*references(world), *pranks])
    await run.fuzz(
        fuzzer,
        [
            Case("profile", member_or_nothing, count=4, edges=pranks),
            Case("balance", member_or_nothing),
            Case("bal", member_or_nothing, count=6),
            Case("daily", text_or_nothing, count=6),
            Case("transfer", member_and_number, count=4, edges=EDGE_NUMBERS),
            Case("pay", member_and_number, count=8),
            Case("coins", text_or_nothing, count=6),
            Case("coins give", member_number_and_reason, count=4, edges=EDGE_NUMBERS),
            Case("coins take", member_number_and_reason, count=4, edges=EDGE_NUMBERS),
            Case("coins set", member_number_and_reason, count=4, edges=EDGE_NUMBERS),
            Case("coins history", member_or_nothing, count=6, edges=pranks[:2]),
            Case("richest", page_or_nothing, count=2, edges=EDGE_NUMBERS, authors=crowd),
        ],
    )
    await run.finish(bot)


async def test_fuzzed_moderation_commands_answer_safely_and_remove_nobody(world, tally):
    fake = world.fake
    modlog = fake.add_channel(world.guild, "mod-log")
    stranger = fake.add_user("stranger")  # a Discord user who is not in the server
    bot = await tally()
    run = FuzzRun(world)
    for reason in ("setup one", "setup two"):  # cases for modlog, case and reason to find
        await run.send(world.mod, "warn", f"bob {reason}", f"!warn bob {reason}")
    fuzzer = Fuzzer(world, "moderation", [*references(world), str(stranger.id), f"<@{stranger.id}>"])

    # Kick and ban only ever name members the bot must refuse, people who are not members, or nobody.
    spared = {world.owner.id, world.mod.id, fake.bot_user.id}
    removable = [member.user for member in world.guild.members.values() if member.user.id not in spared]
    marks = [str(user.id) for user in removable] + [user.username.lower() for user in removable]
    refused_targets = (
        f"<@{world.owner.id}>",
        str(world.owner.id),
        "owner",
        f"<@{world.mod.id}>",
        "mod",
        f"<@{fake.bot_user.id}>",
        "Tally",
        str(stranger.id),
        f"<@{stranger.id}>",
        "stranger",
        str(10**18 + 7),
        "<@123>",
    )

    def spares_members(message: str) -> bool:
        return not message.startswith(("!kick", "!ban")) or not any(mark in message.lower() for mark in marks)

    def target_and_reason(f: Fuzzer, edge: str | None) -> list[str | None]:
        return [f.pick(refused_targets) if f.rng.random() < 0.6 else f.text(), f.maybe(f.words())]

    # never #general: new cases would be posted where the replies are awaited
    channels = ("off", "OFF", f"<#{modlog.id}>", str(modlog.id), "mod-log", "<#123>", f"<#{2**64}>", "#general")

    def channel(f: Fuzzer, edge: str | None) -> list[str | None]:
        return [f.maybe(f.pick(channels) if f.rng.random() < 0.6 else f.text())]

    await run.fuzz(
        fuzzer,
        [
            Case("warn", member_and_reason, count=10),
            Case("kick", target_and_reason, count=10),
            Case("ban", target_and_reason, count=10),
            Case("modlog", member_and_page, count=4, edges=EDGE_NUMBERS),
            Case("case", page_or_nothing, count=4, edges=EDGE_NUMBERS),
            Case("reason", number_and_text, count=4, edges=EDGE_NUMBERS),
            Case("modlogchannel", channel, count=10),
        ],
        allowed=spares_members,
    )
    if fake.audit_log:
        run.failures.append(f"a kick or ban went through: {fake.audit_log}")
    if gone := [user.username for user in removable if user.id not in world.guild.members]:
        run.failures.append(f"members were removed: {gone}")
    await run.finish(bot)
