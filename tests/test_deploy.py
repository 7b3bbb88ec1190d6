"""The systemd units: hardened as the README says, checked by systemd's own analysis where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

UNITS = ["tally.service", "tally@.service", "tally-backup.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_rates_ok_in_systemd_analyze_security(unit):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(ROOT / "deploy" / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    if found is None and "offline" in done.stderr:  # a systemd older than 252 has no --offline
        pytest.skip(f"this systemd cannot analyse a unit file offline: {done.stderr.strip()[:100]}")
    assert found is not None, done.stdout + done.stderr
    assert float(found[1]) <= 3.0, done.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_keeps_what_it_creates_private_and_writes_only_the_data_folder(unit):
    text = (ROOT / "deploy" / unit).read_text(encoding="utf-8")
    for line in ("UMask=0077", "ProtectSystem=strict", "ReadWritePaths=/opt/tally/data", "NoNewPrivileges=yes"):
        assert line in text.splitlines(), line


def pins(name: str) -> dict[str, str]:
    """``package: version`` for every requirement line of a requirements file."""
    found = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line!r} is not pinned to one version"
            found[package.lower()] = version
    return found


def test_the_bot_installs_pinned_packages_and_no_test_tools_and_the_tests_pin_the_same():
    run, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert {"discord-py", "aiohttp", "yarl", "multidict", "aiosqlite", "asyncpg"} <= set(run)  # transitive ones too
    assert not {"pytest", "pytest-asyncio", "pytest-xdist", "ruff"} & set(run)
    assert {"pytest", "pytest-asyncio", "pytest-xdist", "ruff", "pluggy"} <= set(dev)
    assert {package: dev[package] for package in run} == run


def test_the_image_runs_as_its_own_user_keeps_data_in_a_volume_and_holds_no_secrets():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert "USER tally" in dockerfile and "VOLUME /app/data" in dockerfile and "STOPSIGNAL SIGTERM" in dockerfile
    assert any(line.startswith("FROM python:3.11-slim") for line in dockerfile)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".env", "data/", ".git/"} <= set(ignored)
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "env_file: .env" in compose and "tally-data:/app/data" in compose and "stop_grace_period: 60s" in compose


def test_the_image_builds_and_runs_where_containers_can():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker here: the image was not built")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False, timeout=30)
    if info.returncode != 0:
        pytest.skip("docker is installed but no daemon answers: the image was not built")
    built = subprocess.run(
        [docker, "build", "-q", "-t", "tally-test", str(ROOT)], capture_output=True, text=True, check=False, timeout=900
    )
    if built.returncode != 0 and ("pull" in built.stderr or "registry" in built.stderr):
        pytest.skip(f"the base image cannot be fetched here: {built.stderr.strip()[-200:]}")
    assert built.returncode == 0, built.stderr
    ran = subprocess.run(  # no token: the one-line refusal and exit code 2, as outside a container
        [docker, "run", "--rm", "tally-test"], capture_output=True, text=True, check=False, timeout=120
    )
    assert ran.returncode == 2 and "DISCORD_TOKEN is missing" in ran.stderr
