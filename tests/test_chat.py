"""chat.py: what Tally does to member text before showing it, and to replies before sending them."""

from __future__ import annotations

import discord

from chat import MAX_EMBED_TOTAL, fit_embed, lines_within, plain


def test_plain_escapes_markdown_and_mentions():
    assert plain("a*b`c|d~e\\f[g](h) _x_") == "a\\*b\\`c\\|d\\~e\\\\f\\[g\\](h) \\_x\\_"
    assert plain("# big\n  - list\n> quote") == "\\# big\n  \\- list\n\\> quote"
    assert plain("@everyone @here <@&123456789012345678>") == (
        "@\u200beveryone @\u200bhere <@\u200b&123456789012345678>"
    )


def test_plain_cuts_before_escaping_so_an_escape_is_never_split():
    shown = plain("_" * 2000, 50)
    assert shown == "\\_" * 49 + "…"


def test_plain_text_within_the_limit_is_kept_whole():
    assert plain("alice", 5) == "alice"
    assert plain("alice!", 5) == "alic…"


def test_lines_within_keeps_whole_lines_and_says_how_many_were_left_out():
    lines = [f"{n:02d} " + "x" * 97 for n in range(20)]
    shown = lines_within(lines, 1024, "… and {n} earlier")
    assert len(shown) <= 1024
    kept = shown.split("\n")
    assert kept[:-1] == lines[: len(kept) - 1]
    assert kept[-1] == f"… and {20 - (len(kept) - 1)} earlier"
    assert lines_within(lines[:3], 1024) == "\n".join(lines[:3])


def test_fit_embed_cuts_every_part_to_discords_limits():
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    embed.set_footer(text="f" * 3000)
    for _ in range(30):
        embed.add_field(name="n" * 300, value="v" * 2000)
    fitted = fit_embed(embed)
    assert len(fitted.title) == 256 and fitted.title.endswith("…")
    assert len(fitted.fields) <= 25
    assert all(len(f.name) <= 256 and 0 < len(f.value) <= 1024 for f in fitted.fields)
    assert len(fitted.footer.text) <= 2048
    assert len(fitted) <= MAX_EMBED_TOTAL


def test_fit_embed_leaves_an_embed_within_the_limits_as_it_was():
    embed = discord.Embed(title="Case #1", description="fine", colour=discord.Colour.red())
    embed.add_field(name="Reason", value="spam")
    assert fit_embed(embed).to_dict() == embed.to_dict()
