"""What every cog needs to talk to members safely: escaping, sending, parameters, limits."""

from __future__ import annotations

import logging
import re

import discord
from discord.ext import commands

log = logging.getLogger("tally")


# Markdown that works anywhere in a line (escaped by one table lookup per character),
# and markdown that works at a line's start.
_INLINE_MARKDOWN = str.maketrans({ch: "\\" + ch for ch in "\\*_`|~[]"})
_LINE_MARKDOWN = re.compile(r"^([ \t]*)([#>-])", re.MULTILINE)


def plain(text: str, limit: int = 100) -> str:
    """A name or argument made safe to show: cut to ``limit`` characters, then no markdown, no mentions.

    Cut first, escape after: cutting an escaped text could split an escape in
    two, and escaping costs grow with the text. The escaping is one linear pass
    of our own: discord.py's ``escape_markdown`` looks for masked links with a
    pattern whose cost grows with the cube of crafted input (a 500-character
    reason of brackets cost the event loop 7 to 13 ms; see bench/replies.py).
    A backslash before any of these characters shows the character itself.
    """
    text = cut(text, limit).translate(_INLINE_MARKDOWN)
    return discord.utils.escape_mentions(_LINE_MARKDOWN.sub(r"\1\\\2", text))


# "[member]" in help rather than "[member=<you>]"
YOU = commands.parameter(default=lambda ctx: ctx.author, displayed_default="")

# Every number a member types has a maximum, far below SQLite's 64-bit integers:
# beyond it they get the same calm "must be a whole number from 1 to N" line.
MAX_PAGE = 100_000
MAX_CASE_NUMBER = 1_000_000_000
Page = commands.Range[int, 1, MAX_PAGE]
CaseNumber = commands.Range[int, 1, MAX_CASE_NUMBER]


class MemberListPending(commands.CommandError):
    """Discord has not sent the server's member list yet (it allows one request per 30 s)."""


# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
# what passes them is never refused, so Tally cuts to them before sending.
MAX_CONTENT = 2000
MAX_TITLE = MAX_FIELD_NAME = MAX_AUTHOR = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_EMBED_TOTAL = 6000


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters; a cut text ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lines_within(lines: list[str], limit: int, more: str = "… and {n} more") -> str:
    """As many whole lines as fit in ``limit`` characters, then a line saying how many were left out."""
    shown: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        rest = len(lines) - i - 1
        marker = 1 + len(more.format(n=f"{rest:,}")) if rest else 0
        if size + len(line) + (1 if shown else 0) + marker > limit:
            shown.append(more.format(n=f"{len(lines) - i:,}"))
            break
        shown.append(line)
        size += len(line) + (1 if len(shown) > 1 else 0)
    return cut("\n".join(shown), limit)


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """The embed cut to Discord's limits, part by part and in total (6,000 characters)."""
    data = embed.to_dict()
    parts = [("title", MAX_TITLE), ("description", MAX_DESCRIPTION)]
    for key, limit in parts:
        if key in data:
            data[key] = cut(data[key], limit)
    if "footer" in data and "text" in data["footer"]:
        data["footer"]["text"] = cut(data["footer"]["text"], MAX_FOOTER)
    if "author" in data and "name" in data["author"]:
        data["author"]["name"] = cut(data["author"]["name"], MAX_AUTHOR)
    fields = data.get("fields", [])[:MAX_FIELDS]
    for f in fields:
        f["name"] = cut(f["name"], MAX_FIELD_NAME) or "\u200b"
        f["value"] = cut(f["value"], MAX_FIELD_VALUE) or "\u200b"
    data["fields"] = fields
    excess = _embed_size(data) - MAX_EMBED_TOTAL
    if excess > 0 and data.get("description"):  # the longest part gives way first
        data["description"] = cut(data["description"], max(1, len(data["description"]) - excess))
        excess = _embed_size(data) - MAX_EMBED_TOTAL
    while excess > 0 and data["fields"]:
        excess -= len(data["fields"][-1]["name"]) + len(data["fields"][-1]["value"])
        data["fields"].pop()
    return discord.Embed.from_dict(data)


def _embed_size(data: dict) -> int:
    return (
        len(data.get("title", ""))
        + len(data.get("description", ""))
        + len(data.get("footer", {}).get("text", ""))
        + len(data.get("author", {}).get("name", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in data.get("fields", []))
    )


def embed_as_text(embed: discord.Embed, content: str | None = None) -> str:
    """An embed as plain lines, for a channel where Tally may not embed (no Embed Links)."""
    lines = [content] if content else []
    if embed.title:
        lines.append(f"**{embed.title}**")
    if embed.description:
        lines.append(embed.description)
    lines += [f"{field.name}: {field.value}" for field in embed.fields]
    if embed.footer.text:
        lines.append(embed.footer.text)
    return cut("\n".join(lines), MAX_CONTENT)


def may_embed(channel: discord.abc.Messageable) -> bool:
    """Whether Tally may post embeds here (DMs always; a server channel with Embed Links)."""
    guild = getattr(channel, "guild", None)
    if guild is None or not hasattr(channel, "permissions_for"):
        return True
    return channel.permissions_for(guild.me).embed_links


class TallyContext(commands.Context):
    """A command's context whose replies always fit Discord's limits, as text where embeds are not allowed."""

    async def send(self, content: str | None = None, *, embed: discord.Embed | None = None, **kwargs):
        if embed is not None and not may_embed(self.channel):
            content, embed = embed_as_text(embed, content), None
        if content is not None:
            content = cut(str(content), MAX_CONTENT)
        if embed is not None:
            embed = fit_embed(embed)
        return await super().send(content, embed=embed, **kwargs)


def log_cannot_post(channel: discord.abc.Messageable) -> None:
    guild = getattr(channel, "guild", None)
    log.warning(
        "cannot post in channel %s: missing permission (guild %s)",
        getattr(channel, "id", None),
        getattr(guild, "id", None),
    )


async def safe_send(channel: discord.abc.Messageable, content: str | None = None, **kwargs) -> bool:
    """Send, logging (not raising) when Discord refuses. Returns whether it was sent."""
    if kwargs.get("embed") is not None and not may_embed(channel):
        content = embed_as_text(kwargs.pop("embed"), content)
    if content is not None:
        content = cut(content, MAX_CONTENT)
    if kwargs.get("embed") is not None:
        kwargs["embed"] = fit_embed(kwargs["embed"])
    try:
        await channel.send(content, **kwargs)
        return True
    except discord.Forbidden:
        log_cannot_post(channel)
    except discord.HTTPException as exc:
        log.warning("posting in channel %s failed: HTTP %s", getattr(channel, "id", None), exc.status)
    return False


def only_pages(pages: int, of: str = "right now") -> str:
    """The friendly line for a page past the end."""
    return f"There {'is only 1 page' if pages == 1 else f'are only {pages:,} pages'} {of}."
