"""``sonic-rt`` with ``serve``: the model core's commands plus the live server.

The command group lives in ``sonic_rt.cli``; ``serve`` is added here, so the core never imports
the server (dependencies point one way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sonic_rt.cli import main

from .state import Settings

# sessions' threads take turns on the GIL; the default 5 ms turn shows as frame jitter under load
SWITCH_INTERVAL_S = float(os.environ.get("SONIC_RT_SWITCH_INTERVAL", "0.005"))
WS_MAX_BYTES = 4 * 2**20  # larger WebSocket messages are refused by the transport (close code 1009)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-sessions", default=Settings.max_sessions, show_default=True, type=click.IntRange(1, 64),
              help="live sessions and renders at once; one more is told 'busy'")  # fmt: skip
@click.option("--portrait-dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep enrolled portraits' identity caches here (default: memory only)")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 256),
              help="threads for the sessions' computation (default: 2 per core)")  # fmt: skip
@click.option("--ice-address", "ice_addresses", multiple=True, metavar="ADDRESS",
              help="WebRTC: offer this host address (repeatable; default: every interface but loopback). "
                   "--ice-address 127.0.0.1 for a browser on this machine with no network")  # fmt: skip
@click.option("--audit-db", type=click.Path(dir_okay=False, path_type=Path),
              help="the audit log of sessions and enrolments [default: $SONIC_RT_HOME/audit.db, else "
                   "~/.local/state/sonic-rt/audit.db]")  # fmt: skip
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))  # fmt: skip
def serve(host: str, port: int, max_sessions: int, portrait_dir: Path | None, workers: int | None,
          ice_addresses: tuple[str, ...], audit_db: Path | None, log_level: str) -> None:  # fmt: skip
    """Run the live server: the browser client, REST API, WebSocket stream and WebRTC on one port.

    Open http://HOST:PORT/ in a browser; the API is at /docs, the stream protocol in the README.
    """
    import cv2
    import torch
    import uvicorn

    from sonic_rt.audit import default_path

    from .app import create_app

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    torch.set_num_threads(1)  # each session's work is small: threads would only spin-wait
    cv2.setNumThreads(1)
    app = create_app(Settings(max_sessions=max_sessions, portrait_dir=portrait_dir, workers=workers,
                              ice_addresses=ice_addresses or None, audit_db=audit_db or default_path(),
                              address=f"{host}:{port}"))  # fmt: skip
    uvicorn.run(app, host=host, port=port, loop="uvloop", ws="websockets-sansio", ws_max_size=WS_MAX_BYTES,
                log_level=log_level)  # fmt: skip
