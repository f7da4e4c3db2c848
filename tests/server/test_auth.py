"""Access control through a real server on loopback: API keys on every transport, per-key limits,
Origin checks, TLS, and the ``serve`` refusals that come before any server is built."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets

from server import protocol as p
from server.client import StreamClient, auth_headers
from server.keys import KeyStore
from server.state import Settings
from tests.server import harness
from tests.server.conftest import LiveServer, run
from tests.server.harness import eventually, offer_peer

ALLOWED = "http://allowed.example:8080"
EVIL = "http://evil.example"
TINY_MINUTES = 0.05  # 3 s of video: 75 frames at 25 fps
KEYS = {  # name: (max_sessions, minutes_per_day)
    "alice": (None, None), "solo": (1, None), "gone": (None, None), "tiny": (None, TINY_MINUTES),
    "tiny-rtc": (None, TINY_MINUTES), "spent": (None, 1), "short": (None, 0.02),
}  # fmt: skip


@dataclass
class Keyed:
    server: LiveServer
    keys: dict[str, str]
    store: KeyStore

    def headers(self, name: str | None) -> dict[str, str]:
        return auth_headers(self.keys[name]) if name else {}


def make_keys(path: Path) -> tuple[KeyStore, dict[str, str]]:
    store = KeyStore(path)
    keys = {name: store.add(name, *limits)[0] for name, limits in KEYS.items()}
    store.revoke("gone")
    return store, keys


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    store, keys = make_keys(tmp_path_factory.mktemp("keys") / "keys.db")
    settings = Settings(max_sessions=4, keys_db=store.path, allowed_origins=(ALLOWED,), ice_addresses=("127.0.0.1",))
    with LiveServer(settings) as server:
        yield Keyed(server, keys, store)


def error_of(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


async def start(url: str, fields: dict | None = None, headers: dict | None = None) -> tuple[dict, int | None]:
    """Connect, send start; the first event (ready or error) and, after an error, the close code."""
    async with websockets.connect(url, additional_headers=headers or {}) as ws:
        await ws.send(json.dumps({"type": "start", **(fields or {})}))
        while isinstance(event := await ws.recv(), bytes):
            pass
        event = json.loads(event)
        if event["type"] != "error":
            return event, None
        await ws.wait_closed()
        return event, ws.close_code


# -- the rules, without a server -----------------------------------------------------------------------


def test_minutes_are_counted_per_utc_day_and_places_given_back(tmp_path):
    from server.auth import Access, Principal, QuotaExceeded, TooManySessions

    now = [datetime(2030, 1, 1, 23, 59, tzinfo=UTC).timestamp()]
    access = Access(KeyStore(tmp_path / "keys.db"), clock=lambda: now[0])
    carol = Principal("carol", max_sessions=2, minutes_per_day=1)
    first, second = access.acquire(carol), access.acquire(carol)
    with pytest.raises(TooManySessions):
        access.acquire(carol)
    assert first.spend(30) and not second.spend(30)  # 60 s: the day's minute is used up
    first.release()
    first.release()  # once only
    assert access.sessions("carol") == 1
    with pytest.raises(QuotaExceeded, match="more from 2030-01-02 00:00 UTC"):
        access.acquire(carol)
    now[0] += 120  # past midnight, UTC: a new day
    assert access.used_today("carol") == 0
    third = access.acquire(carol)
    third.need(60)
    with pytest.raises(QuotaExceeded, match="this render is 61.0 s"):
        third.need(61)
    access.seed_usage("carol", 59.5)
    assert third.spend(0.4) and not third.spend(0.1)


def test_keys_and_origins_as_presented():
    from server.auth import bearer, normal_origin

    assert bearer("Bearer srt_abc") == bearer("bearer  srt_abc ") == "srt_abc"
    assert bearer(None) is bearer("") is bearer("Basic srt_abc") is bearer("Bearer") is None
    assert normal_origin("HTTP://Example.com:80/") == "http://example.com"
    assert normal_origin("https://example.com:8443") == "https://example.com:8443"
    assert normal_origin("wss://[::1]:443") == "https://[::1]"
    for junk in ("null", "example.com", "ftp://example.com", "http://example.com/path", "http://x:99999"):
        assert normal_origin(junk) is None, junk


# -- REST ---------------------------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/v1/portraits", {"data": {"sample": "sample:astronaut"}}),
    ("GET", "/v1/portraits/sample:astronaut-e0.5-r512/image.jpg", {}),
    ("POST", "/v1/renders", {"data": {"text": "Hello."}}),
    ("POST", "/v1/webrtc/offer", {"json": {"sdp": "x", "type": "offer"}}),
    ("GET", "/v1/sessions/0123/recording.mp4", {}),
    ("GET", "/v1/anything-new", {}),  # under /v1/, a key is needed unless a route is listed as public
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_every_protected_route_refuses_a_missing_wrong_or_revoked_key(keyed, method, path, body):
    wrong = keyed.keys["alice"][:-4] + "AAAA"
    for headers, says in [
        ({}, "an API key is needed"),
        ({"Authorization": f"Basic {keyed.keys['alice']}"}, "an API key is needed"),
        (auth_headers(wrong), "unknown API key"),
        (keyed.headers("gone"), "was revoked"),
    ]:
        r = httpx.request(method, f"{keyed.server.http}{path}", headers=headers, timeout=30, **body)
        assert r.status_code == 401 and error_of(r) == "unauthorized", (headers, r.text)
        assert says in r.json()["error"]["message"] and r.headers["www-authenticate"] == "Bearer"


def test_a_good_key_passes_every_protected_route(keyed):
    http, headers = keyed.server.http, keyed.headers("alice")
    enrolled = httpx.post(f"{http}/v1/portraits", data={"sample": "sample:astronaut"}, headers=headers, timeout=60)
    assert enrolled.status_code == 200, enrolled.text
    image = httpx.get(f"{http}{enrolled.json()['image']}", headers=headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    missing = httpx.get(f"{http}/v1/sessions/0123/recording.mp4", headers=headers)
    assert missing.status_code == 404 and error_of(missing) == "no_recording"  # past the key, to the route
    offer = httpx.post(f"{http}/v1/webrtc/offer", json={"sdp": "x", "type": "offer"}, headers=headers, timeout=30)
    assert offer.status_code == 400 and error_of(offer) == "bad_offer"
    before = keyed.server.state.access.used_today("alice")
    render = httpx.post(f"{http}/v1/renders", data={"text": "Hello."}, headers=headers, timeout=120)
    assert render.status_code == 200 and render.headers["content-type"] == "video/mp4"
    spent = keyed.server.state.access.used_today("alice") - before
    assert spent == pytest.approx(float(render.headers["X-Seconds"]), abs=1e-3) and spent > 0
    assert keyed.server.state.access.sessions("alice") == 0


def test_public_routes_need_no_key(keyed):
    http = keyed.server.http
    for path in ("/", "/healthz", "/metrics", "/v1/samples", "/v1/samples/astronaut.jpg", "/docs", "/openapi.json"):
        assert httpx.get(f"{http}{path}").status_code == 200, path
    assert httpx.get(f"{http}/v1/auth").json() == {"auth": "api_key"}
    schema = httpx.get(f"{http}/openapi.json").json()  # /docs' Authorize button sends the key
    keyed_paths = {path for path, ops in schema["paths"].items() if any("security" in op for op in ops.values())}
    assert keyed_paths == {"/v1/portraits", "/v1/portraits/{portrait_id}/image.jpg", "/v1/renders",
                           "/v1/webrtc/offer", "/v1/sessions/{session_id}/recording.mp4"}  # fmt: skip


def test_v1_auth_tells_whose_key_it_is(keyed):
    answer = httpx.get(f"{keyed.server.http}/v1/auth", headers=keyed.headers("solo")).json()
    assert answer["auth"] == "api_key"
    assert answer["principal"] | {"minutes_used_today": 0} == {
        "name": "solo", "max_sessions": 1, "minutes_per_day": None, "sessions": 0, "minutes_used_today": 0}  # fmt: skip
    r = httpx.get(f"{keyed.server.http}/v1/auth", headers=keyed.headers("gone"))
    assert r.status_code == 401 and error_of(r) == "unauthorized"


# -- WebSocket -----------------------------------------------------------------------------------------


def test_the_websocket_refuses_a_start_without_a_good_key(keyed):
    url, keys = keyed.server.ws, keyed.keys

    async def go():
        return [
            await start(url),
            await start(url, {"api_key": keys["alice"][:-4] + "AAAA"}),
            await start(url, {"api_key": keys["gone"]}),
            await start(url, headers=auth_headers("srt_nonsense")),
            await start(url, {"params": {"dynamic_scale": 9}}),  # no key: refused before the params are read
        ]

    for event, close_code in run(go()):
        assert event["type"] == "error" and event["code"] == "unauthorized" and event["fatal"], event
        assert close_code == 1008
    assert keyed.server.state.slots.used == 0


def test_the_websocket_takes_the_key_in_start_or_in_the_handshake(keyed):
    async def go():
        by_field, _ = await start(keyed.server.ws, {"api_key": keyed.keys["alice"]})
        async with StreamClient(keyed.server.ws, api_key=keyed.keys["alice"]) as client:
            by_header = await client.start()
        return by_field, by_header

    by_field, by_header = run(go())
    assert by_field["type"] == by_header["type"] == "ready"
    sessions = {s.id: s for s in keyed.server.state.audit.log.sessions(limit=1000)}
    assert sessions[by_field["session"]].requester == sessions[by_header["session"]].requester == "alice"
    assert "api_key" not in repr(p.Start(type="start", api_key="srt_secret"))  # kept out of logs


def test_webrtc_offers_need_a_key(keyed):
    r = httpx.post(f"{keyed.server.http}/v1/webrtc/offer", json={"sdp": "x", "type": "offer"})
    assert r.status_code == 401 and error_of(r) == "unauthorized"


# -- limits --------------------------------------------------------------------------------------------


def test_a_key_with_one_session_gets_too_many_sessions_for_a_second(keyed):
    server, solo = keyed.server, keyed.keys["solo"]

    async def go():
        async with StreamClient(server.ws, api_key=solo) as first:
            await first.start()
            second = await start(server.ws, {"api_key": solo})
            async with httpx.AsyncClient(base_url=server.http, headers=auth_headers(solo), timeout=60) as http:
                render = await http.post("/v1/renders", data={"text": "Hello."})
                offer = await http.post("/v1/webrtc/offer", json={"sdp": "x", "type": "offer"})
            others = await start(server.ws, {"api_key": keyed.keys["alice"]})  # another key is not held back
        for _ in range(100):  # the first session ends when its client leaves
            if server.state.access.sessions("solo") == 0:
                break
            await asyncio.sleep(0.05)
        again = await start(server.ws, {"api_key": solo})
        return second, render, offer, others, again

    (event, close_code), render, offer, (others, _), (again, _) = run(go())
    assert event["code"] == "too_many_sessions" and event["fatal"] and close_code == 1008
    assert render.status_code == 429 and error_of(render) == "too_many_sessions"
    assert offer.status_code == 429 and error_of(offer) == "too_many_sessions"
    assert others["type"] == "ready" and again["type"] == "ready"


def test_a_session_ends_when_the_key_has_used_its_minutes_and_no_other_starts(keyed):
    server, tiny = keyed.server, keyed.keys["tiny"]

    async def go():
        frames = 0
        async with StreamClient(server.ws, api_key=tiny) as client:
            await client.start()
            async for item in client:
                if isinstance(item, p.Media):
                    frames += item.kind == p.KIND_VIDEO
                elif item["type"] == "error":
                    break
            await client.ws.wait_closed()
            ended = item, client.ws.close_code
            record = await harness.ended(server.state.audit.log, client.ready["session"])
        refused = await start(server.ws, {"api_key": tiny})
        async with httpx.AsyncClient(base_url=server.http, headers=auth_headers(tiny), timeout=60) as http:
            render = await http.post("/v1/renders", data={"text": "Hello."})
        return frames, ended, refused, render, record

    frames, (event, close_code), (refusal, refusal_close), render, record = run(go())
    assert event["code"] == "quota_exceeded" and event["fatal"] and close_code == 1008, event
    assert record.end_reason == "error: quota_exceeded"  # the audit log says why, as the client was told
    assert frames == round(TINY_MINUTES * 60 * 25)  # every frame of the key's 3 s, and not one more
    assert refusal["code"] == "quota_exceeded" and refusal_close == 1008 and "minutes of video" in refusal["message"]
    assert render.status_code == 429 and error_of(render) == "quota_exceeded"
    assert eventually(lambda: server.state.access.sessions("tiny") == 0)


def test_usage_already_recorded_counts(keyed):
    """``seed_usage``: minutes used before a restart (the audit log's) are not handed out again."""
    keyed.server.state.access.seed_usage("spent", 60)
    event, close_code = run(start(keyed.server.ws, {"api_key": keyed.keys["spent"]}))
    assert event["code"] == "quota_exceeded" and close_code == 1008


def test_a_render_longer_than_the_minutes_left_is_refused(keyed):
    text = "Hello there, and welcome to the show. It is a long sentence, longer than a second."
    r = httpx.post(f"{keyed.server.http}/v1/renders", data={"text": text}, headers=keyed.headers("short"), timeout=120)
    assert r.status_code == 429 and error_of(r) == "quota_exceeded" and "s left today" in r.json()["error"]["message"]
    assert keyed.server.state.access.used_today("short") == 0 and keyed.server.state.slots.used == 0


def test_a_webrtc_session_ends_when_the_key_has_used_its_minutes(keyed):
    async def go():
        peer = await offer_peer(keyed.server.http, headers=keyed.headers("tiny-rtc"))
        assert peer.response.status_code == 200, peer.response.text
        await peer.event(lambda seen: any(e["type"] == "stopped" for e in seen), timeout=60)
        await peer.pc.close()
        record = await harness.ended(keyed.server.state.audit.log, peer.response.json()["session"])
        return peer.events, record

    events, record = run(go())
    assert record.end_reason == "error: quota_exceeded"
    error = next(e for e in events if e["type"] == "error")
    assert error["code"] == "quota_exceeded" and error["fatal"]
    assert events[-1]["frames"] >= round(TINY_MINUTES * 60 * 25)
    assert eventually(lambda: keyed.server.state.access.sessions("tiny-rtc") == 0)


# -- Origin --------------------------------------------------------------------------------------------


def test_pages_from_other_origins_are_refused(keyed):
    http, headers = keyed.server.http, keyed.headers("alice")
    own = f"http://127.0.0.1:{keyed.server.port}"
    for origin in (EVIL, "null", "http://127.0.0.1:1", f"https://127.0.0.1:{keyed.server.port}"):
        r = httpx.get(f"{http}/v1/auth", headers={**headers, "Origin": origin})
        assert r.status_code == 403 and error_of(r) == "bad_origin", origin
    for origin in (own, ALLOWED):
        r = httpx.get(f"{http}/v1/auth", headers={**headers, "Origin": origin})
        assert r.status_code == 200 and r.json()["principal"]["name"] == "alice", origin
    assert r.headers["access-control-allow-origin"] == ALLOWED  # a page there may read the answer (CORS)
    preflight = httpx.options(f"{http}/v1/portraits", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200 and "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_websockets_from_other_origins_are_refused_at_the_handshake(keyed):
    url, key = keyed.server.ws, keyed.keys["alice"]

    async def go():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, origin=EVIL)
        own = await start_from(f"http://127.0.0.1:{keyed.server.port}")
        allowed = await start_from(ALLOWED)
        return refused.value.response, own, allowed

    async def start_from(origin: str) -> dict:
        async with websockets.connect(url, origin=origin) as ws:
            await ws.send(json.dumps({"type": "start", "api_key": key}))
            return json.loads(await ws.recv())

    response, own, allowed = run(go())
    assert response.status_code == 403 and json.loads(response.body)["error"]["code"] == "bad_origin"
    assert own["type"] == allowed["type"] == "ready"


def test_development_mode_needs_no_key_but_checks_origins(server):
    """The default ``Settings`` (no key store), as ``serve --dev``: everyone is "dev"."""
    assert httpx.get(f"{server.http}/v1/auth").json()["principal"]["name"] == "dev"
    assert httpx.get(f"{server.http}/v1/auth").json()["auth"] == "none"
    schema = httpx.get(f"{server.http}/openapi.json").json()  # and the schema says no key is needed
    assert not any("security" in op for ops in schema["paths"].values() for op in ops.values())
    r = httpx.post(f"{server.http}/v1/portraits", data={"sample": "sample:astronaut"}, headers={"Origin": EVIL})
    assert r.status_code == 403 and error_of(r) == "bad_origin"
    # a page whose own name was pointed at 127.0.0.1 (DNS rebinding) is not the server's own page
    rebound = {"Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}
    r = httpx.get(f"{server.http}/v1/auth", headers=rebound)
    assert r.status_code == 403 and error_of(r) == "bad_origin" and "loopback" in r.json()["error"]["message"]
    with pytest.raises(websockets.InvalidStatus):
        run(websockets.connect(server.ws, origin=EVIL))


# -- TLS -----------------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sonic-rt test")])
    now = datetime.now(UTC)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_tls_serves_https_and_wss_with_keys(tmp_path):
    cert, key_file = self_signed(tmp_path)
    store, keys = make_keys(tmp_path / "keys.db")
    trust = ssl.create_default_context(cafile=str(cert))
    settings = Settings(max_sessions=2, keys_db=store.path)
    with LiveServer(settings, ssl_certfile=str(cert), ssl_keyfile=str(key_file)) as server:
        assert server.http.startswith("https://") and server.ws.startswith("wss://")
        assert httpx.get(f"{server.http}/healthz", verify=trust).json()["status"] == "ok"
        refused = httpx.get(f"{server.http}/v1/auth", verify=trust, headers=auth_headers("srt_wrong"))
        assert refused.status_code == 401
        enrolled = httpx.post(f"{server.http}/v1/portraits", data={"sample": "sample:astronaut"}, verify=trust,
                              headers=auth_headers(keys["alice"]), timeout=60)  # fmt: skip
        assert enrolled.status_code == 200, enrolled.text
        with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
            httpx.get(f"{server.http}/healthz")

        async def go():
            async with StreamClient(server.ws, api_key=keys["alice"], ssl=trust) as client:
                ready = await client.start()
                async for item in client:
                    if isinstance(item, p.Media) and item.kind == p.KIND_VIDEO:
                        return ready, item

        ready, frame = run(go())
        assert ready["type"] == "ready" and frame.index == 0 and frame.payload


# -- `sonic-rt serve`: refused before any server is built -------------------------------------------


@pytest.fixture
def no_server(monkeypatch):
    """``serve`` with the app and uvicorn replaced by recorders: what it would have built and run."""
    import uvicorn

    import server.app

    built = {}
    monkeypatch.setattr(server.app, "create_app", lambda settings: built.setdefault("settings", settings))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: built.setdefault("uvicorn", options))
    return built


def serve(*args: str):
    from click.testing import CliRunner

    from server.cli import main

    return CliRunner().invoke(main, ["serve", *args])


def test_serve_refuses_dev_mode_off_loopback_and_no_keys(no_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SONIC_RT_HOME", str(tmp_path / "home"))
    cert, key_file = self_signed(tmp_path)
    for args, message in [
        (("--dev", "--host", "0.0.0.0"), "--dev serves without API keys, so only on a loopback address"),
        (("--dev", "--host", "192.168.1.10"), "not --host 192.168.1.10"),
        (("--dev", "--keys", str(tmp_path / "k.db")), "--dev uses no API keys"),
        ((), "no API keys in"),
        (("--keys", str(tmp_path / "none.db")), "create one with `sonic-rt keys add NAME`, or run `sonic-rt serve"),
        (("--dev", "--tls-cert", str(cert)), "--tls-cert and --tls-key go together"),
        (("--dev", "--allow-origin", "example.com"), "not an origin: 'example.com'"),
    ]:
        result = serve(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not no_server  # nothing was built
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "home").exists()


def test_serve_starts_in_dev_mode_on_loopback_and_with_keys_elsewhere(no_server, tmp_path):
    for host in ("127.0.0.1", "::1", "localhost"):
        no_server.clear()
        result = serve("--dev", "--host", host)
        assert result.exit_code == 0, result.output
        assert "development mode" in result.stderr and no_server["settings"].keys_db is None
    store, _ = make_keys(tmp_path / "keys.db")
    cert, key_file = self_signed(tmp_path)
    no_server.clear()
    result = serve("--keys", str(store.path), "--host", "0.0.0.0", "--allow-origin", ALLOWED)
    assert result.exit_code == 0, result.output
    assert "API keys travel in clear text" in result.stderr
    assert no_server["settings"].keys_db == store.path and no_server["settings"].allowed_origins == (ALLOWED,)
    no_server.clear()
    result = serve("--keys", str(store.path), "--host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key_file))
    assert result.exit_code == 0 and "clear text" not in result.stderr
    assert no_server["uvicorn"]["ssl_certfile"] == str(cert) and no_server["uvicorn"]["ssl_keyfile"] == str(key_file)
