"""The stress suite's server: a real one on loopback with an audit log on disk, checked when the
suite is done — every record verifies, and every session started has ended (nothing lost)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from tests.server.conftest import LiveServer, unrated
from tests.stress.tally import record


@pytest.fixture(scope="session")
def stress_server(tmp_path_factory):
    from server.state import Settings
    from sonic_rt.provenance.audit import AuditLog

    path = tmp_path_factory.mktemp("stress-audit") / "audit.db"
    # the protocol fuzz holds a connection for a whole test before it starts a session on it, and
    # the suite starts sessions faster than a user: no start deadline or rates to speak of here
    limits = dataclasses.replace(unrated(), start_timeout_s=3600)
    settings = Settings(max_sessions=3, ice_addresses=("127.0.0.1",), audit_db=path, limits=limits)
    with LiveServer(settings) as live:
        yield live
    with AuditLog(path) as log:  # the server has stopped: every session must be ended, the chain intact
        verification = log.verify()
        sessions = log.sessions(limit=100_000)
    still_open = [s.id for s in sessions if s.ended is None]
    record("audit log", len(sessions), len(still_open) + (0 if verification.ok else 1),
           records=verification.records, problems=verification.problems)  # fmt: skip
    assert verification.ok, verification.problems
    assert not still_open, f"sessions never ended: {still_open}"


@pytest.fixture(scope="session")
def portrait(stress_server) -> str:
    """The astronaut enrolled at 128 px: the stress is in the input, not in rendering big frames."""
    r = httpx.post(f"{stress_server.http}/v1/portraits", data={"sample": "sample:astronaut", "min_resolution": "128"},
                   timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["id"]
