"""What every cog needs to talk to members safely: escaping, sending, parameters."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

log = logging.getLogger("tally")


def plain(text: str, limit: int = 100) -> str:
    """A name or argument made safe to show: cut to ``limit`` characters, then no markdown, no mentions.

    Cut first, escape after: escaping a crafted 2,000-character argument whole
    costs the event loop far more than the few characters a reply shows, and
    cutting an escaped text could split an escape in two.
    """
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


# "[member]" in help rather than "[member=<you>]"
YOU = commands.parameter(default=lambda ctx: ctx.author, displayed_default="")


def log_cannot_post(channel: discord.abc.Messageable) -> None:
    guild = getattr(channel, "guild", None)
    log.warning(
        "cannot post in channel %s: missing permission (guild %s)",
        getattr(channel, "id", None),
        getattr(guild, "id", None),
    )


async def safe_send(channel: discord.abc.Messageable, content: str | None = None, **kwargs) -> bool:
    """Send, logging (not raising) when Discord refuses. Returns whether it was sent."""
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
