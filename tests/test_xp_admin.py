"""The confirmation codes of `!xp reset-server`, on a clock the test moves."""

from __future__ import annotations

from xp_admin import Confirmations


def test_a_code_confirms_once_for_its_admin_in_its_server_within_its_time():
    now = [1000.0]
    codes = Confirmations(60, clock=lambda: now[0])
    code = codes.ask(1, 10)
    assert len(code) == 6 and code.isdigit()
    assert not codes.confirm(1, 11, code)  # another admin
    assert not codes.confirm(2, 10, code)  # another server
    assert not codes.confirm(1, 10, "000000" if code != "000000" else "111111")
    assert codes.confirm(1, 10, code)
    assert not codes.confirm(1, 10, code)  # once

    code = codes.ask(1, 10)
    now[0] += 60.5  # past the 60 s
    assert not codes.confirm(1, 10, code)
    first = codes.ask(1, 10)
    second = codes.ask(1, 10)  # a new code replaces the earlier one
    if first != second:  # (one chance in 900,000 that they are the same)
        assert not codes.confirm(1, 10, first)
    assert codes.confirm(1, 10, second)
