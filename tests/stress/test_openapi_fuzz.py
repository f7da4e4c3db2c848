"""schemathesis against the REST API's OpenAPI schema: every operation, with requests generated
from the schema (positive: what it allows) and against it (negative: what it forbids), through
the stress suite's real server on loopback — in development mode (no key) and with API keys.

The property, per response: never a 5xx; a status the schema declares, with a body that conforms
to it; every 4xx and 5xx the ``{"error": {"code", "message"}}`` body with a documented code; and
negative requests refused with a 4xx.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from server.keys import KeyStore
from server.state import Settings
from tests.server.conftest import LiveServer, unrated
from tests.stress.codes import rest_codes
from tests.stress.strategies import JSON, WRONG_TYPES, one_bad_param, valid
from tests.stress.tally import record, scaled

EXAMPLES = 40  # per operation and mode at scale 1
TIMEOUT_S = 60  # one request; an accepted render of the bounded text takes a few seconds
MAX_TEXT = 24  # characters of a render's text: what is accepted is a few seconds of speech, not minutes
CODES = rest_codes()


def _schema() -> schemathesis.BaseSchema:
    """The schema the server serves, built from the app itself, so every operation is known when the
    tests are collected (a route added later is fuzzed without anyone listing it here)."""
    from server.app import create_app

    return schemathesis.openapi.from_dict(create_app().openapi())


SCHEMA = _schema()
OPERATIONS = {op.ok().label: op.ok() for op in SCHEMA.get_all_operations()}
# negative requests need something the schema constrains: a body (a path's plain string cannot be anything else)
TAKES_BODY = sorted(label for label, op in OPERATIONS.items() if "requestBody" in op.definition.raw)


def error_body(ctx, response, case) -> None:
    """Every 4xx and 5xx is ``{"error": {"code", "message"}}`` with a documented code."""
    if response.status_code < 400:
        return
    code = error_code(response)
    assert code in CODES, f"{response.status_code} with {code}: {response.text[:200]!r}"


def error_code(response) -> str:
    """The code of an error body; what stands instead when the body is not one."""
    try:
        error = response.json()["error"]
        assert isinstance(error["message"], str)
        return str(error["code"])
    except (ValueError, KeyError, TypeError, AssertionError):
        return "(not an error body)"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          error_body]  # fmt: skip


# A render's params (a JSON string the schema cannot describe): one of Sonic's parameters beside
# its range or type, the flags not true or false, a duration near the audio's, or all in range
# (never more than 10 s of video, so an accepted render stays short); or not an object, not JSON,
# nested deeper than a parser goes.
FLAGS = st.dictionaries(st.sampled_from(["pad", "trim", "allow_silence"]), st.integers() | st.floats() | WRONG_TYPES,
                        min_size=1, max_size=2)  # fmt: skip
DURATION = st.fixed_dictionaries({"duration": st.floats(-1, 10) | WRONG_TYPES}, optional={"pad": st.booleans()})
IN_RANGE = st.fixed_dictionaries({}, optional={n: valid(n) for n in ("dynamic_scale", "fps", "seed", "smoothing")})
RENDER_PARAMS = st.one_of(
    (one_bad_param() | FLAGS | DURATION | IN_RANGE).map(json.dumps),
    JSON.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.text(max_size=30),
    st.builds(lambda n, shape: shape[0] * n + shape[1] * n, st.integers(1, 200_000), st.sampled_from(["[]", "{}"])),
)


def steer(case, data) -> None:
    """Half of the time, set what decides whether a request goes deeper than its first check to a
    good value (a real portrait, exactly one of text or audio, ``RENDER_PARAMS``), so the generated
    rest reaches the code behind it; and keep a render's text to ``MAX_TEXT`` characters (spoken in
    full it would take as long as it is)."""
    body, label = case.body, case.operation.label
    if not isinstance(body, dict):
        return
    if label == "POST /v1/renders" and data.draw(st.booleans(), label="steer"):
        body["portrait"] = "sample:astronaut"
        body.pop("audio", None)
        body["text"] = body.get("text") or "Hi."
        body.pop("voice", None)
        body["params"] = data.draw(RENDER_PARAMS, label="params")
    elif label == "POST /v1/portraits" and data.draw(st.booleans(), label="steer"):
        body.pop("image", None)
        body["sample"] = "sample:astronaut"
    elif label == "POST /v1/webrtc/offer" and data.draw(st.booleans(), label="steer"):
        body["portrait"] = "sample:astronaut"
        body["type"] = data.draw(st.sampled_from(["offer", "answer", "pranswer", "rollback"]), label="type")
    if label == "POST /v1/renders" and isinstance(body.get("text"), str):
        body["text"] = body["text"][:MAX_TEXT]


def fuzz(label: str, mode: GenerationMode, base_url: str, headers: dict[str, str], category: str) -> None:
    """Send ``scaled(EXAMPLES)`` generated requests to one operation; assert every response passes
    ``CHECKS`` (and, for negative requests, that they are refused); record what was tried."""
    operation = OPERATIONS[label]
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    failures = 0
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @settings(max_examples=scaled(EXAMPLES), deadline=None, database=None, print_blob=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def one(case, data) -> None:
        nonlocal failures
        if mode == GenerationMode.POSITIVE:
            steer(case, data)
        response = case.call(base_url=base_url, headers=headers, timeout=TIMEOUT_S)
        statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 400:
            codes[error_code(response)] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except BaseException:
            failures += 1
            raise

    started = time.monotonic()
    try:
        one()
    finally:
        record(category, sum(statuses.values()), failures, mode=mode.value, statuses=dict(statuses),
               codes=dict(codes), seconds=round(time.monotonic() - started, 1))  # fmt: skip


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_in_development_mode(stress_server, label):
    fuzz(label, GenerationMode.POSITIVE, stress_server.http, {}, f"OpenAPI: {label}")


@pytest.mark.parametrize("label", TAKES_BODY)
def test_every_operation_refuses_what_its_schema_forbids(stress_server, label):
    fuzz(label, GenerationMode.NEGATIVE, stress_server.http, {}, f"OpenAPI (negative): {label}")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server that needs keys; its key's minutes bound what an accepted render may cost."""
    store = KeyStore(tmp_path_factory.mktemp("openapi-keys") / "keys.db")
    key = store.add("fuzz", None, 0.5)[0]
    settings = Settings(max_sessions=2, keys_db=store.path, ice_addresses=("127.0.0.1",), limits=unrated())
    with LiveServer(settings) as server:
        yield server, key


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_with_a_key(keyed, label):
    server, key = keyed
    fuzz(label, GenerationMode.POSITIVE, server.http, {"Authorization": f"Bearer {key}"},
         f"OpenAPI (keys): {label}")  # fmt: skip


def test_the_schema_fuzzed_is_the_one_served(stress_server):
    served = httpx.get(f"{stress_server.http}/openapi.json", timeout=30).json()
    assert sorted(served["paths"]) == sorted(SCHEMA.raw_schema["paths"])
