"""Run the unchanged bot.py against the fake Discord.

Usage: python tests/launcher.py  (with TALLY_FAKE_DISCORD=http://127.0.0.1:PORT)

Points discord.py's REST base and default gateway at the fake, optionally
forces zlib-stream transport compression (TALLY_FAKE_COMPRESSION=zlib-stream;
by default discord.py picks zstd-stream when zstandard is installed), then runs
bot.py as ``__main__``.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

if os.environ.get("TALLY_FAKE_COMPRESSION") == "zlib-stream":
    sys.modules["zstandard"] = None  # discord.py then falls back to zlib-stream

import discord.gateway  # noqa: E402
import discord.http  # noqa: E402
import yarl  # noqa: E402

BOT = Path(__file__).resolve().parent.parent / "bot.py"

base = os.environ["TALLY_FAKE_DISCORD"].rstrip("/")
discord.http.Route.BASE = f"{base}/api/v10"
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http", "ws", 1) + "/gateway/")

sys.path.insert(0, str(BOT.parent))
sys.argv = [str(BOT)]
runpy.run_path(str(BOT), run_name="__main__")
