"""The limits as options: their checks, and ``sonic-rt serve``'s flags for them."""

from __future__ import annotations

import dataclasses

import pytest

from server.limits import RATED, Limits
from tests.server.test_auth import no_server, serve  # noqa: F401 (a fixture)


def test_limits_refuse_what_cannot_be_a_limit():
    assert Limits().per_minute("renders") == (10, 20)
    assert set(RATED) == {"portraits", "renders", "sessions"}
    for field, value in [("start_timeout_s", 0), ("header_timeout_s", -1), ("max_connections", 0),
                         ("max_unstarted", 0), ("renders_per_minute", -1), ("max_body_bytes", 0)]:  # fmt: skip
        with pytest.raises(ValueError, match=field):
            Limits(**{field: value})
    assert Limits(max_connections_per_address=0, renders_per_minute=0).renders_per_minute == 0  # 0: none


def test_every_limit_is_a_serve_option_with_its_default(no_server):  # noqa: F811
    result = serve("--dev")
    assert result.exit_code == 0, result.output
    assert no_server["settings"].limits == Limits()
    options = no_server["uvicorn"]
    assert options["timeout_keep_alive"] == Limits.keep_alive_s and options["http"].limits == Limits()


def test_serve_passes_the_limits_it_is_given(no_server):  # noqa: F811
    result = serve("--dev", "--start-timeout", "2.5", "--max-unstarted", "10", "--max-unstarted-per-address", "0",
                   "--connect-timeout", "4", "--max-pending-offers", "5", "--max-pending-offers-per-address", "1",
                   "--rate-portraits", "7", "--rate-renders", "1:3", "--rate-sessions", "0:9",
                   "--max-connections", "100", "--max-connections-per-address", "0",
                   "--connection-rate-per-address", "0", "--header-timeout", "3",
                   "--body-timeout", "30", "--keep-alive-timeout", "2", "--max-header-kib", "16",
                   "--max-body-mib", "8")  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = Limits(start_timeout_s=2.5, max_unstarted=10, max_unstarted_per_address=0, connect_timeout_s=4,
                      max_pending_offers=5, max_pending_offers_per_address=1, portraits_per_minute=7,
                      portraits_per_minute_per_key=7, renders_per_minute=1, renders_per_minute_per_key=3,
                      sessions_per_minute=0, sessions_per_minute_per_key=9, max_connections=100,
                      max_connections_per_address=0, connection_rate_per_address=0, header_timeout_s=3,
                      body_timeout_s=30, keep_alive_s=2,
                      max_header_bytes=16 * 1024, max_body_bytes=8 * 2**20)  # fmt: skip
    assert no_server["settings"].limits == expected
    assert no_server["uvicorn"]["http"].limits == expected and no_server["uvicorn"]["timeout_keep_alive"] == 2


@pytest.mark.parametrize("args", [("--rate-renders", "ten"), ("--rate-renders", "1:-1"), ("--start-timeout", "0"),
                                  ("--max-connections", "0"), ("--max-unstarted-per-address", "-1")])  # fmt: skip
def test_serve_refuses_a_limit_that_is_not_one(no_server, args):  # noqa: F811
    result = serve("--dev", *args)
    assert result.exit_code == 2 and args[0] in result.output, result.output
    assert not no_server


def test_limits_are_settings_that_round_trip():
    from server.state import Settings

    limits = dataclasses.replace(Limits(), renders_per_minute=1)
    assert Settings(limits=limits).limits.renders_per_minute == 1 and Settings().limits == Limits()
