"""Run the unchanged bot.py against the fake Discord.

Usage: python tests/launcher.py  (with TALLY_FAKE_DISCORD=http://127.0.0.1:PORT)

Points discord.py's REST base and default gateway at the fake, optionally
forces zlib-stream transport compression (TALLY_FAKE_COMPRESSION=zlib-stream;
by default discord.py picks zstd-stream when zstandard is installed), then runs
bot.py as ``__main__``. With TALLY_STALL_PROBE=1 (bench/coldstart.py) a task
wakes every millisecond on the bot's event loop and prints each time it
woke more than 2 ms late, ``stall probe: <seconds> at <perf_counter>``, to
stderr, and each pass of the garbage collector over 2 ms, ``gc pass: <seconds>
generation <n> at <perf_counter>``, and how often Python hands the GIL
between threads, ``switch interval: <seconds>``, at start and whenever the bot
changes it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import runpy
import sys
import time
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

if os.environ.get("TALLY_STALL_PROBE") == "1":
    run = asyncio.run

    async def _probe() -> None:
        switching = None
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            if (late := now - before - 0.001) > 0.002:
                print(f"stall probe: {late:.6f} at {now:.6f}", file=sys.stderr, flush=True)
            if switching != (switching := sys.getswitchinterval()):
                print(f"switch interval: {switching:.6f}", file=sys.stderr, flush=True)

    started = [0.0]  # when the garbage collector's pass under way began

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (took := time.perf_counter() - started[0]) > 0.002:
            print(
                f"gc pass: {took:.6f} generation {info['generation']} at {time.perf_counter():.6f}",
                file=sys.stderr,
                flush=True,
            )

    gc.callbacks.append(_timed)

    async def _with_probe(main):
        probe = asyncio.create_task(_probe())
        try:
            return await main
        finally:
            probe.cancel()

    asyncio.run = lambda main, **kwargs: run(_with_probe(main), **kwargs)

sys.path.insert(0, str(BOT.parent))
sys.argv = [str(BOT)]
runpy.run_path(str(BOT), run_name="__main__")
