"""The ``sonic-rt`` command line answers help, key and audit commands and argument errors without
loading the models or the server (torch, FastAPI, ...): they load in the commands that use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sonic_rt.provenance.audit import SAMPLE_CONSENT, AuditLog
from tests.conftest import REPO

HEAVY = ("torch", "diffusers", "mediapipe", "cv2", "av", "numpy", "scipy", "numba", "pocketsphinx", "fastapi",
         "starlette", "uvicorn", "aiortc", "ray")  # fmt: skip

# the console script's ``main()``, as a library call, then the top-level modules it imported
RUN = """
import json, sys
import click
from server.cli import main
try:
    status = main(sys.argv[2:], prog_name="sonic-rt", standalone_mode=False) or 0  # a command's None
except click.ClickException as err:
    err.show()
    status = err.exit_code
except SystemExit as err:
    status = err.code
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted({name.split(".")[0] for name in sys.modules})}, out)
"""


def sonic_rt(tmp_path, *args: str) -> tuple[int, str, set[str]]:
    """Run ``sonic-rt ARGS`` in a new interpreter: its exit status, its output, the modules it imported."""
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SONIC_RT_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", RUN, str(report), *args], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(report.read_text())
    return result["status"], run.stdout + run.stderr, set(result["modules"])


@pytest.fixture
def audit_db(tmp_path):
    path = tmp_path / "audit.db"
    with AuditLog(path) as log, log.session("s1", transport="cli", requester="alice", client="local",
                                            portrait="sample:astronaut", portrait_sha256=None, consent=SAMPLE_CONSENT,
                                            params={}, record=False) as opened:  # fmt: skip
        opened.done(25, 1.0)
    return path


@pytest.mark.parametrize(
    ("args", "status", "shown"),
    [
        (["--help"], 0, "keys"),
        (["--version"], 0, "version"),
        (["enroll", "--help"], 0, "--expand-ratio"),
        (["preview", "--help"], 0, "--tile"),
        (["generate", "--help"], 0, "--inference-steps"),
        (["serve", "--help"], 0, "[default: 3;"),  # Settings.max_sessions, read without the server
        (["serve", "--help"], 0, "--sessions-per-replica"),
        (["keys", "--help"], 0, "revoke"),
        (["keys", "add", "--help"], 0, "--minutes-per-day"),
        (["audit", "--help"], 0, "verify"),
        (["watermark", "detect", "--help"], 0, "--seconds"),
        (["generate", "--fps", "1000"], 2, "1000 is not in the range"),
        (["generate", "sample:astronaut", "-o", "out.mp4"], 2, "give either an AUDIO file or --say TEXT"),
        (["generate", "me.png", "speech.wav", "-o", "out.mp4"], 2, "error [consent_required]"),
        (["enroll", "me.png", "--min-resolution", "257"], 2, "must be even"),
        (["preview", "me.png", "-o", "sheet.png", "--min-resolution", "257"], 2, "must be even"),
        (["watermark", "detect", "missing.mp4"], 2, "does not exist"),
        (["no-such-command"], 2, "No such command"),
        (["serve", "--dev", "--host", "0.0.0.0"], 2, "only on a loopback address"),
        (["serve", "--tls-cert", "cert.pem"], 2, "--tls-cert and --tls-key go together"),
        (["serve"], 2, "no API keys"),
    ],
)
def test_help_and_argument_errors_load_nothing_heavy(tmp_path, args, status, shown):
    (tmp_path / "cert.pem").touch()
    got, output, modules = sonic_rt(tmp_path, *args)
    assert (got, shown in output) == (status, True), output
    assert sorted(modules.intersection(HEAVY)) == []


def test_keys_commands_load_nothing_heavy(tmp_path):
    db = str(tmp_path / "keys.db")
    for args, status, shown in [
        (["keys", "list", "--keys", db], 0, "no keys"),
        (["keys", "add", "alice", "--keys", db], 0, "created key 'alice'"),
        (["keys", "list", "--keys", db], 0, "alice"),
        (["keys", "revoke", "alice", "--keys", db], 0, "revoked key 'alice'"),
        (["keys", "revoke", "bob", "--keys", db], 1, "no key named 'bob'"),
    ]:
        got, output, modules = sonic_rt(tmp_path, *args)
        assert (got, shown in output) == (status, True), (args, output)
        assert sorted(modules.intersection(HEAVY)) == [], args


def test_audit_commands_load_nothing_heavy(tmp_path, audit_db):
    for args, status, shown in [
        (["audit", "verify", "--db", str(audit_db)], 0, "OK: "),
        (["audit", "show", "--db", str(audit_db)], 0, "alice"),
        (["audit", "show", "--db", str(audit_db), "--json"], 0, '"requester": "alice"'),
        (["audit", "verify", "--db", str(tmp_path / "none.db")], 1, "no audit log at"),
    ]:
        got, output, modules = sonic_rt(tmp_path, *args)
        assert (got, shown in output) == (status, True), (args, output)
        assert sorted(modules.intersection(HEAVY)) == [], args


def test_the_server_state_keeps_its_settings():
    """``Settings`` lives in the light ``server.settings``; ``server.state`` still names it."""
    from server import settings, state

    assert state.Settings is settings.Settings
