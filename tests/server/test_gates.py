"""The limits in the app, through real servers on loopback: the start deadline, the caps on
WebSockets without a session and on WebRTC offers not connected, the rates, and their metrics.

Clients come from their own loopback addresses (127.0.0.N: Linux routes all of 127/8 to ``lo``),
so each test's address has its own places and buckets, and one address's limits can be seen not
to touch another's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.client import StreamClient, auth_headers
from server.gates import Gates, Places, RateLimited, TooManyConnections, address_key
from server.keys import KeyStore
from server.limits import Limits
from server.metrics import Metrics
from server.state import Settings
from tests.server.conftest import LiveServer, run
from tests.server.harness import eventually
from tests.server.test_ratelimit import Clock

START_S = 2.0  # the quick server's start deadline
CONNECT_S = 2.0  # ... and WebRTC connect deadline
MARGIN_S = 10.0  # what a loaded 2-core machine may add to a deadline


def refused(server: LiveServer, reason: str) -> float:
    """``sonic_rt_refused_total{reason}`` as ``/metrics`` has it now."""
    text = httpx.get(f"{server.http}/metrics", timeout=10).text
    found = re.search(rf'^sonic_rt_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def http(source: str, **options) -> httpx.Client:
    """An HTTP client whose connections come from ``source``."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30, **options)


def connect(server: LiveServer, source: str, **options):
    return websockets.connect(server.ws, local_addr=(source, 0), open_timeout=10, **options)


async def events_until_closed(ws, limit: int = 100) -> list[dict]:
    events = []
    with pytest.raises(ConnectionClosed):
        for _ in range(limit):
            message = await ws.recv()
            if isinstance(message, str):
                events.append(json.loads(message))
    return events


async def offer_only(server: LiveServer, source: str, headers: dict | None = None):
    """An aiortc offer posted from ``source``, its answer never applied (its peer never connects);
    the peer connection (close it) and the response."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("control")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source), timeout=30) as client:
        response = await client.post(f"{server.http}/v1/webrtc/offer", headers=headers,
                                     json={"sdp": pc.localDescription.sdp, "type": "offer"})  # fmt: skip
    return pc, response


@pytest.fixture(scope="module")
def quick():
    """Development mode (no keys), short deadlines."""
    limits = Limits(start_timeout_s=START_S, connect_timeout_s=CONNECT_S)
    with LiveServer(Settings(max_sessions=3, ice_addresses=("127.0.0.1",), limits=limits)) as server:
        yield server


@pytest.fixture(scope="module")
def capped():
    """Development mode, small caps and rates, deadlines long enough not to end what a test holds."""
    limits = Limits(start_timeout_s=60, connect_timeout_s=20, max_unstarted=6, max_unstarted_per_address=3,
                    max_pending_offers=3, max_pending_offers_per_address=2, portraits_per_minute=3,
                    renders_per_minute=2, sessions_per_minute=5)  # fmt: skip
    with LiveServer(Settings(max_sessions=8, ice_addresses=("127.0.0.1",), limits=limits)) as server:
        yield server


# -- without a server ------------------------------------------------------------------------------


def test_addresses_count_by_host_and_ipv6_by_its_64():
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key(None) == "unknown" and address_key("/tmp/sock") == "/tmp/sock"


def test_places_are_capped_in_total_and_per_address_and_given_back_once():
    places = Places("things", "things", total=3, per_address=2, retry_after_s=4.2)
    a1, a2 = places.take("a"), places.take("a")
    with pytest.raises(TooManyConnections) as refused_a:
        places.take("a")
    err = refused_a.value
    assert (err.status, err.reason, err.retry_after) == (429, "things_per_address", 5)
    b = places.take("b")
    with pytest.raises(TooManyConnections) as full:
        places.take("c")
    assert (full.value.status, full.value.reason, full.value.code) == (503, "things", "too_many_connections")
    a1.release()
    a1.release()  # once
    assert places.held == 2 and places.holding("a") == 1
    places.take("c")
    for place in (a2, b):
        place.release()
    assert places.held == 1 and places.holding("a") == 0


def test_rates_count_per_address_and_per_key_and_only_what_they_allow():
    clock, metrics = Clock(), Metrics()
    limits = Limits(renders_per_minute=2, renders_per_minute_per_key=3)
    gates = Gates(limits, metrics, keyed=True, clock=clock)
    gates.rate("renders", "a", "alice")
    gates.rate("renders", "a", "alice")
    with pytest.raises(RateLimited) as by_address:
        gates.rate("renders", "a", "alice")
    assert (by_address.value.code, by_address.value.reason, by_address.value.retry_after) == \
        ("rate_limited", "renders_per_address", 30)  # fmt: skip
    gates.rate("renders", "b", "alice")  # the key's third
    with pytest.raises(RateLimited) as by_key:
        gates.rate("renders", "c", "alice")
    assert by_key.value.reason == "renders_per_key" and "'alice'" in str(by_key.value)
    gates.rate("renders", "c", "bob")  # c's refusal above counted nothing for c
    gates.rate("renders", "c", "bob")
    gates.rate("portraits", "a", "alice")  # another kind has its own buckets
    clock.now += 30
    gates.rate("renders", "a", "alice")
    without_keys = Gates(limits, Metrics(), keyed=False, clock=clock)  # development mode: everyone is "dev"
    for address in "abcdef":
        without_keys.rate("renders", address, "dev")


# -- WebSockets before start ------------------------------------------------------------------------


def test_a_websocket_that_never_starts_is_told_and_closed(quick):
    before = refused(quick, "start_timeout")

    async def go():
        async with connect(quick, "127.0.0.2") as ws:
            opened = time.monotonic()
            events = await events_until_closed(ws)
            return events, ws.close_code, time.monotonic() - opened

    events, code, after = run(go())
    assert [(e["type"], e["code"], e["fatal"]) for e in events] == [("error", "start_timeout", True)]
    assert code == 1008
    assert START_S - 0.5 <= after <= START_S + MARGIN_S
    assert refused(quick, "start_timeout") == before + 1
    assert eventually(lambda: quick.state.gates.unstarted.held == 0)


def test_a_websocket_that_sends_only_bad_messages_is_closed_at_the_deadline_too(quick):
    async def go():
        async with connect(quick, "127.0.0.3") as ws:
            for text in ("{", '{"type": "say", "text": "hi"}', '{"type": "start", "portrait": "nobody"}'):
                await ws.send(text)
            return [e["code"] for e in await events_until_closed(ws)], ws.close_code

    codes, close_code = run(go())
    assert codes == ["bad_json", "not_started", "unknown_portrait", "start_timeout"] and close_code == 1008
    assert eventually(lambda: quick.state.slots.used == 0)


def test_a_websocket_that_starts_in_time_streams_past_the_deadline(quick):
    async def go():
        async with StreamClient(quick.ws) as client:
            await client.start()
            deadline, frames = time.monotonic() + START_S + 1.5, 0
            async for item in client:  # frames go on past the start deadline, and no error comes
                assert not (isinstance(item, dict) and item["type"] == "error"), item
                frames += not isinstance(item, dict)
                if time.monotonic() > deadline:
                    break
            await client.stop()
            return frames

    assert run(go()) > 10
    assert quick.state.gates.unstarted.held == 0


def test_websockets_without_a_session_are_capped_per_address_and_in_total(capped):
    gates = capped.state.gates
    before = {r: refused(capped, r) for r in ("unstarted_websockets_per_address", "unstarted_websockets")}

    async def refusal(source: str) -> tuple[int, str, str]:
        with pytest.raises(InvalidStatus) as refused_:
            async with connect(capped, source):
                pass
        response = refused_.value.response
        return response.status_code, json.loads(response.body)["error"]["code"], response.headers["Retry-After"]

    async def go():
        a = [await connect(capped, "127.0.0.10") for _ in range(3)]
        assert gates.unstarted.holding("127.0.0.10") == 3
        assert await refusal("127.0.0.10") == (429, "too_many_connections", "60")  # the address's limit
        b = [await connect(capped, "127.0.0.11") for _ in range(3)]  # another address has its own
        assert await refusal("127.0.0.12") == (503, "too_many_connections", "60")  # the server's limit: 6
        await a[0].close()
        for _ in range(100):  # the server sees the close and gives the place back
            if gates.unstarted.held < 6:
                break
            await asyncio.sleep(0.05)
        c = await connect(capped, "127.0.0.12")
        await c.send(json.dumps({"type": "start"}))  # a session started holds no place
        assert json.loads(await c.recv())["type"] == "ready"
        for _ in range(100):
            if gates.unstarted.held == 5:
                break
            await asyncio.sleep(0.05)
        assert gates.unstarted.held == 5
        for ws in [*a[1:], *b, c]:
            await ws.close()

    run(go())
    assert refused(capped, "unstarted_websockets_per_address") == before["unstarted_websockets_per_address"] + 1
    assert refused(capped, "unstarted_websockets") == before["unstarted_websockets"] + 1
    assert eventually(lambda: gates.unstarted.held == 0 and capped.state.slots.used == 0)


# -- WebRTC offers before they connect ------------------------------------------------------------------


def test_webrtc_offers_not_connected_are_capped(capped):
    gates, before = capped.state.gates, refused(capped, "pending_offers_per_address")

    async def go():
        pcs = []
        try:
            for _ in range(2):
                pc, response = await offer_only(capped, "127.0.0.20")
                pcs.append(pc)
                assert response.status_code == 200, response.text
            pc, response = await offer_only(capped, "127.0.0.20")
            pcs.append(pc)
            assert response.status_code == 429 and response.json()["error"]["code"] == "too_many_connections"
            assert response.headers["Retry-After"] == "20"
            assert gates.pending.holding("127.0.0.20") == 2 and capped.state.slots.used == 2  # refused before admission
            pc, response = await offer_only(capped, "127.0.0.21")  # another address
            pcs.append(pc)
            assert response.status_code == 200
            pc, response = await offer_only(capped, "127.0.0.22")
            pcs.append(pc)
            assert response.status_code == 503  # the server's limit: 3
        finally:
            for pc in pcs:
                await pc.close()

    run(go())
    assert refused(capped, "pending_offers_per_address") == before + 1


def test_a_webrtc_offer_whose_peer_never_connects_ends_at_the_deadline(quick):
    before = refused(quick, "connect_timeout")

    async def go():
        pc, response = await offer_only(quick, "127.0.0.23")
        assert response.status_code == 200, response.text
        session = response.json()["session"]
        assert session in quick.state.peers and quick.state.gates.pending.held == 1
        opened = time.monotonic()
        for _ in range(int((CONNECT_S + MARGIN_S) / 0.05)):
            if session not in quick.state.peers:
                break
            await asyncio.sleep(0.05)
        await pc.close()
        return session, time.monotonic() - opened

    session, after = run(go())
    assert session not in quick.state.peers and after <= CONNECT_S + MARGIN_S
    assert quick.state.gates.pending.held == 0 and eventually(lambda: quick.state.slots.used == 0)
    assert refused(quick, "connect_timeout") == before + 1
    ended = next(s for s in quick.state.audit.log.sessions(limit=20) if s.id == session)
    assert ended.end_reason == "error: connect_timeout"


# -- rates ------------------------------------------------------------------------------------------


def test_portraits_and_renders_are_rate_limited_per_address_in_development_mode(capped):
    before = {r: refused(capped, r) for r in ("portraits_per_address", "renders_per_address")}
    with http("127.0.0.30") as client, http("127.0.0.31") as other:
        # the rate counts requests, whatever their answer: unknown samples and bad params are cheap ones
        portraits = [client.post(f"{capped.http}/v1/portraits", data={"sample": "sample:nobody"}) for _ in range(4)]
        assert [r.status_code for r in portraits] == [404, 404, 404, 429]
        limited = portraits[-1]
        assert limited.json()["error"]["code"] == "rate_limited" and "3 portrait uploads a minute" in limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 20  # a token every 20 s
        assert other.post(f"{capped.http}/v1/portraits", data={"sample": "sample:nobody"}).status_code == 404
        renders = [client.post(f"{capped.http}/v1/renders", data={"text": "hi", "params": "{"}) for _ in range(3)]
        assert [r.status_code for r in renders] == [422, 422, 429]
        assert 1 <= int(renders[-1].headers["Retry-After"]) <= 30
        # refused before the body is read: a big upload costs the server nothing
        upload = client.post(f"{capped.http}/v1/renders", files={"audio": ("a.wav", b"\0" * 20 * 2**20)})
        assert upload.status_code == 429
    assert refused(capped, "portraits_per_address") == before["portraits_per_address"] + 1
    assert refused(capped, "renders_per_address") == before["renders_per_address"] + 2


def test_sessions_started_over_websocket_are_rate_limited(capped):
    before = refused(capped, "sessions_per_address")

    async def attempt() -> tuple[list[str], int]:
        async with connect(capped, "127.0.0.32") as ws:
            await ws.send(json.dumps({"type": "start", "portrait": "nobody"}))  # counted, then refused
            first = json.loads(await ws.recv())
            if not first["fatal"]:
                return [first["code"]], 0
            await ws.wait_closed()
            return [first["code"]], ws.close_code

    results = [run(attempt()) for _ in range(6)]
    assert results[:5] == [(["unknown_portrait"], 0)] * 5
    assert results[5] == (["rate_limited"], 1013)
    assert refused(capped, "sessions_per_address") == before + 1


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys.db")
    keys = {name: store.add(name, None, None)[0] for name in ("alice", "bob")}
    limits = Limits(portraits_per_minute=3, portraits_per_minute_per_key=4)
    with LiveServer(Settings(max_sessions=2, keys_db=store.path, limits=limits)) as server:
        yield server, keys


def test_rates_are_counted_per_key_too(keyed):
    server, keys = keyed
    alice, bob = auth_headers(keys["alice"]), auth_headers(keys["bob"])
    before = refused(server, "portraits_per_key")
    url = f"{server.http}/v1/portraits"
    sample = {"sample": "sample:nobody"}
    with http("127.0.0.40") as a, http("127.0.0.41") as b:
        assert [a.post(url, data=sample, headers=alice).status_code for _ in range(4)] == [404, 404, 404, 429]
        assert b.post(url, data=sample, headers=alice).status_code == 404  # the key's fourth, from elsewhere
        limited = b.post(url, data=sample, headers=alice)  # the key's fifth
        assert limited.status_code == 429 and "the API key 'alice'" in limited.json()["error"]["message"]
        assert b.post(url, data=sample, headers=bob).status_code == 404  # another key, the same address
        assert b.post(url, data=sample).status_code == 401  # no key: refused first, counted for nothing
    assert refused(server, "portraits_per_key") == before + 1
