"""Connections and HTTP requests bounded below the app, against raw sockets on loopback: slow
headers (slowloris), slow bodies, oversized ones, idle connections, and the caps on connections
at once. Clients come from their own loopback addresses (127.0.0.N) where a test counts them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.limits import Limits
from server.state import Settings
from tests.server.conftest import LiveServer, run
from tests.server.test_gates import MARGIN_S, http, refused

HEADER_S, BODY_S = 0.5, 1.0


@pytest.fixture(scope="module")
def slow():
    limits = Limits(header_timeout_s=HEADER_S, body_timeout_s=BODY_S, max_header_bytes=8192, max_body_bytes=2**20)
    with LiveServer(Settings(max_sessions=1, limits=limits)) as server:
        yield server


@pytest.fixture(scope="module")
def few():
    limits = Limits(max_connections=8, max_connections_per_address=3)
    with LiveServer(Settings(max_sessions=1, limits=limits)) as server:
        yield server


@contextlib.contextmanager
def raw(server: LiveServer, source: str = "127.0.0.1"):
    """A TCP connection to ``server`` from ``source``."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=MARGIN_S, source_address=(source, 0))
    try:
        yield sock
    finally:
        sock.close()


def answer(sock: socket.socket) -> tuple[int, dict, dict]:
    """The status, headers and JSON body of the one response on ``sock``, read until it closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def request(host: str, method: str = "GET", path: str = "/healthz", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}".encode()


PART = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


def chunked(body: bytes, size: int = 0x10000) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_headers_sent_slowly_get_408_at_the_deadline(slow):
    before = refused(slow, "header_timeout")
    with raw(slow, "127.0.0.50") as sock:
        opened = time.monotonic()
        sock.sendall(request(f"127.0.0.1:{slow.port}"))
        sock.settimeout(0.1)
        for i in range(int(MARGIN_S / 0.1)):  # slowloris: one more header now and then, never the end
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
                if data := sock.recv(65536, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        took = time.monotonic() - opened
        sock.settimeout(MARGIN_S)
        status, headers, body = answer(sock)
    assert data and (status, body["error"]["code"]) == (408, "request_timeout") and headers["connection"] == "close"
    assert HEADER_S - 0.1 <= took <= HEADER_S + MARGIN_S
    assert refused(slow, "header_timeout") == before + 1


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(slow):
    with raw(slow, "127.0.0.51") as sock:
        opened = time.monotonic()
        assert sock.recv(100) == b""  # closed, nothing said: there was no request to answer
        assert HEADER_S - 0.1 <= time.monotonic() - opened <= HEADER_S + MARGIN_S


def test_a_body_sent_slowly_gets_408_at_its_deadline_and_the_app_reads_a_disconnect(slow):
    before = refused(slow, "body_timeout")
    with raw(slow, "127.0.0.52") as sock:
        headers = "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(request(f"127.0.0.1:{slow.port}", "POST", "/v1/portraits", headers) + b"--x\r\n")
        opened = time.monotonic()
        status, _, body = answer(sock)
        took = time.monotonic() - opened
    assert (status, body["error"]["code"]) == (408, "request_timeout")
    assert BODY_S - 0.1 <= took <= BODY_S + MARGIN_S
    assert refused(slow, "body_timeout") == before + 1
    assert httpx.get(f"{slow.http}/healthz", timeout=10).status_code == 200  # the app is none the worse


def test_headers_and_bodies_over_their_size_are_refused_at_once(slow):
    host = f"127.0.0.1:{slow.port}"
    cases = [
        (request(host, extra="X-Big: " + "a" * 20_000), 431, "headers_too_large"),
        (request(host, "POST", "/v1/portraits", f"Content-Length: {2**20 + 1}\r\n\r\n"), 413, "request_too_large"),
        (request(host, "POST", "/v1/portraits",  # read by the app as it comes, until there is too much
                 "Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n")
         + chunked(PART + b"a" * (2**20 + 1)), 413, "request_too_large"),
    ]  # fmt: skip
    before = {r: refused(slow, r) for r in ("headers_too_large", "body_too_large")}
    for data, status, code in cases:
        with raw(slow, "127.0.0.53") as sock:
            with contextlib.suppress(ConnectionError):  # the server may close before all is sent
                sock.sendall(data)
            got, _, body = answer(sock)
        assert (got, body["error"]["code"]) == (status, code)
    assert refused(slow, "headers_too_large") == before["headers_too_large"] + 1
    assert refused(slow, "body_too_large") == before["body_too_large"] + 2


def test_a_kept_alive_connection_has_a_deadline_per_request_not_per_connection(slow):
    before = refused(slow, "header_timeout")
    with http("127.0.0.54") as client:
        for _ in range(4):  # 1.2 s in all on one connection, each request well within its deadline
            assert client.get(f"{slow.http}/healthz").status_code == 200
            time.sleep(0.3)
    assert refused(slow, "header_timeout") == before


def test_a_websocket_outlives_the_http_deadlines(slow):
    async def go():
        async with websockets.connect(slow.ws, open_timeout=10) as ws:
            await asyncio.sleep(BODY_S + HEADER_S + 0.5)  # past both deadlines
            await ws.send(json.dumps({"type": "start"}))
            while isinstance(message := await ws.recv(), bytes):
                pass
            return json.loads(message)["type"]

    assert run(go()) == "ready"


def test_connections_are_capped_per_address_and_in_total(few):
    before = {r: refused(few, r) for r in ("connections_per_address", "connections")}
    host = f"127.0.0.1:{few.port}"
    with contextlib.ExitStack() as held:
        for source, n in (("127.0.0.60", 3), ("127.0.0.61", 3)):
            for _ in range(n):
                held.enter_context(raw(few, source))
        with raw(few, "127.0.0.60") as sock:  # that address's fourth
            sock.sendall(request(host) + b"\r\n")
            status, headers, body = answer(sock)
        assert (status, body["error"]["code"], headers["retry-after"]) == (429, "too_many_connections", "1")
        for _ in range(2):
            held.enter_context(raw(few, "127.0.0.62"))  # 8 open: the server's limit
        with raw(few, "127.0.0.63") as sock:
            sock.sendall(request(host) + b"\r\n")
            status, _, body = answer(sock)
        assert (status, body["error"]["code"]) == (503, "too_many_connections")

        async def handshake():
            async with websockets.connect(few.ws, open_timeout=10, local_addr=("127.0.0.63", 0)):
                pass

        with pytest.raises(InvalidStatus) as refused_ws:  # a WebSocket handshake is refused the same way
            run(handshake())
        assert refused_ws.value.response.status_code == 503
    with http("127.0.0.63") as client:
        for _ in range(50):  # once the server has seen them close
            if (status := client.get(f"{few.http}/healthz").status_code) == 200:
                break
            time.sleep(0.1)
        assert status == 200
    assert refused(few, "connections_per_address") == before["connections_per_address"] + 1
    assert refused(few, "connections") == before["connections"] + 2


@pytest.fixture(scope="module")
def trickle():
    with LiveServer(Settings(max_sessions=1, limits=Limits(connection_rate_per_address=2))) as server:
        yield server


def served(sock: socket.socket, host: str) -> bool:
    """Whether a GET on ``sock`` is answered (False: the connection was dropped unanswered)."""
    try:
        sock.sendall(request(host, extra="Connection: close\r\n\r\n"))
        return sock.recv(12).startswith(b"HTTP/1.1 200")
    except ConnectionError:
        return False


def test_connections_that_come_too_fast_from_one_address_are_dropped(trickle):
    before, host = refused(trickle, "connection_rate"), f"127.0.0.1:{trickle.port}"
    with contextlib.ExitStack() as opened:
        socks = [opened.enter_context(raw(trickle, "127.0.0.70")) for _ in range(12)]  # 2 a second allowed
        answered = [served(sock, host) for sock in socks]
        with raw(trickle, "127.0.0.71") as other:  # another address has its own
            assert served(other, host)
    assert answered[:2] == [True, True] and answered.count(False) >= 1  # 12 in under 5 s: some dropped
    assert refused(trickle, "connection_rate") == before + answered.count(False)


def test_websockets_count_as_connections_of_their_address_until_they_close(few):
    host, guard = f"127.0.0.1:{few.port}", few.server.config.http_protocol_class

    async def go():
        sockets = [await websockets.connect(few.ws, open_timeout=10, local_addr=("127.0.0.64", 0)) for _ in range(3)]
        assert guard.by_address["127.0.0.64"] == 3
        with raw(few, "127.0.0.64") as sock:  # the address's fourth connection
            sock.sendall(request(host) + b"\r\n")
            status, _, _ = answer(sock)
        for ws in sockets:
            await ws.close()
        return status

    assert run(go()) == 429
    for _ in range(50):
        if "127.0.0.64" not in guard.by_address:
            break
        time.sleep(0.1)
    assert "127.0.0.64" not in guard.by_address
