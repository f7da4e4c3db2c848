"""The session router: a session's first call goes to the replica with the fewest sessions, every
later one to the same replica; a session whose replica has died is sent anywhere (to be told it is
lost); calls without a session go anywhere."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

pytest.importorskip("ray.serve", reason="serving on Ray needs the ray extra: pip install 'sonic-rt[ray]'")

from ray.serve._private.common import DeploymentHandleSource, DeploymentID, RequestMetadata  # noqa: E402
from ray.serve.request_router import PendingRequest  # noqa: E402

from server.cluster.routing import SessionRouter  # noqa: E402


@dataclass(frozen=True)
class Replica:  # what the router reads of a RunningReplica
    replica_id: str


def request(method: str, session: str = "") -> PendingRequest:
    meta = RequestMetadata(request_id="r", internal_request_id="i", call_method=method, session_id=session)
    return PendingRequest(args=[], kwargs={}, metadata=meta)


def route(router: SessionRouter, replicas: list[Replica], method: str, session: str = "") -> list[list[Replica]]:
    async def go():
        return await router.choose_replicas(replicas, request(method, session))

    return asyncio.run(go())


@pytest.fixture
def router() -> SessionRouter:
    r = SessionRouter(deployment_id=DeploymentID(name="Generator", app_name="sonic-rt"),
                      handle_source=DeploymentHandleSource.UNKNOWN)  # fmt: skip
    r.initialize_state()
    return r


def test_sessions_open_on_the_least_loaded_replica_and_stay_there(router):
    a, b = Replica("a"), Replica("b")
    homes = {}
    for s in ("s1", "s2", "s3", "s4"):
        [[home]] = route(router, [a, b], "open", s)
        homes[s] = home
    assert sorted(list(homes.values()).count(r) for r in (a, b)) == [2, 2]
    for _ in range(5):
        for s, home in homes.items():
            assert route(router, [a, b], "call", s) == [[home]]
            assert route(router, [b, a], "call", s) == [[home]]  # whatever order the candidates come in


def test_a_new_replica_takes_the_next_sessions(router):
    a, b = Replica("a"), Replica("b")
    route(router, [a], "open", "s1")
    route(router, [a], "open", "s2")
    assert route(router, [a, b], "open", "s3") == [[b]]
    assert route(router, [a, b], "call", "s1") == [[a]]  # the older sessions do not move


def test_close_frees_the_place(router):
    a, b = Replica("a"), Replica("b")
    [[first]] = route(router, [a, b], "open", "s1")
    route(router, [a, b], "close", "s1")
    assert router.sessions_on()[first.replica_id] == 0


def test_a_session_of_a_dead_replica_goes_anywhere_to_be_told(router):
    a, b = Replica("a"), Replica("b")
    [[home]] = route(router, [a, b], "open", "s1")
    other = b if home == a else a
    assert route(router, [other], "call", "s1") == [[other]]  # that replica answers generator_lost


def test_calls_without_a_session_go_anywhere(router):
    a, b = Replica("a"), Replica("b")
    assert route(router, [a, b], "sessions") == [[a, b]]
