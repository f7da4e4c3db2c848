"""``sonic-rt`` with ``serve`` and ``keys``: the model core's commands plus the live server.

The command group lives in ``sonic_rt.cli``; ``serve`` and ``keys`` are added here, so the core
never imports the server (dependencies point one way).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click

from sonic_rt.cli import main

from . import keys as keystore
from .cluster.launch import RaySettings
from .limits import Limits
from .origins import is_loopback, normal_origin
from .settings import Settings

# sessions' threads take turns on the GIL; the default 5 ms turn shows as frame jitter under load
SWITCH_INTERVAL_S = float(os.environ.get("SONIC_RT_SWITCH_INTERVAL", "0.005"))
WS_MAX_BYTES = 4 * 2**20  # larger WebSocket messages are refused by the transport (close code 1009)
# a clean shutdown waits this long for connections to close: a client that stopped reading never lets
# its socket close (its buffers stay full), and without a limit kept the server from stopping at all
GRACEFUL_SHUTDOWN_S = 10


def _origins(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if normal_origin(value) is None:
            raise click.BadParameter(f"not an origin: {value!r} (scheme://host[:port], e.g. https://example.com)")
    return values


def _replicas(ctx, param, value: str) -> tuple[int, int]:
    low, _, high = value.partition(":")
    try:
        bounds = int(low), int(high or low)
    except ValueError:
        raise click.BadParameter(f"not MIN:MAX: {value!r} (e.g. 1:4, or 2 for exactly two)") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise click.BadParameter(f"need 1 <= MIN <= MAX, got {value!r}")
    return bounds


def _rate(ctx, param, value: str) -> tuple[int, int]:
    per_address, _, per_key = value.partition(":")
    try:
        rates = int(per_address), int(per_key or per_address)
    except ValueError:
        raise click.BadParameter(f"not ADDRESS:KEY: {value!r} (per minute, e.g. 10:20; 0: no limit)") from None
    if min(rates) < 0:
        raise click.BadParameter(f"rates are 0 (no limit) or more, got {value!r}")
    return rates


def _limit_options(command):
    """``serve``'s options for ``server.limits``: each sets the ``Limits`` field its parameter names
    (a rate, ``ADDRESS:KEY``, sets the two of its kind)."""
    seconds, count, some = click.FloatRange(0, None, min_open=True), click.IntRange(1, None), click.IntRange(0, None)
    d = Limits()

    def rate(kind: str, what: str):
        default = "{}:{}".format(*d.per_minute(kind))
        return click.option(f"--rate-{kind}", f"{kind}_rate", default=default, show_default=True, callback=_rate,
                            metavar="ADDRESS:KEY", help=f"{what} a minute per client address and per API key "
                                                        "(bursts of as many; 0: no limit)")  # fmt: skip

    options = [
        click.option("--start-timeout", "start_timeout_s", type=seconds, default=d.start_timeout_s, show_default=True,
                     metavar="S", help="a WebSocket that has not started a session by then is closed "
                                       "(start_timeout, close code 1008)"),
        click.option("--max-unstarted", type=count, default=d.max_unstarted, show_default=True,
                     help="WebSockets open without a session, all clients together"),
        click.option("--max-unstarted-per-address", type=some, default=d.max_unstarted_per_address,
                     show_default=True, help="WebSockets without a session from one client address (0: no limit)"),
        click.option("--connect-timeout", "connect_timeout_s", type=seconds, default=d.connect_timeout_s,
                     show_default=True, metavar="S", help="a WebRTC session whose peer has not connected by then "
                                                          "after its answer ends"),
        click.option("--max-pending-offers", type=count, default=d.max_pending_offers, show_default=True,
                     help="WebRTC offers answered but not yet connected, all clients together"),
        click.option("--max-pending-offers-per-address", type=some, default=d.max_pending_offers_per_address,
                     show_default=True, help="WebRTC offers not yet connected from one client address (0: no limit)"),
        rate("portraits", "portrait enrolments (POST /v1/portraits)"),
        rate("renders", "renders (POST /v1/renders)"),
        rate("sessions", "live sessions started (WebSocket start, WebRTC offer)"),
        click.option("--max-connections", type=count, default=d.max_connections, show_default=True,
                     help="TCP connections open at once (HTTP and WebSocket), all clients together"),
        click.option("--max-connections-per-address", type=some, default=d.max_connections_per_address,
                     show_default=True, help="TCP connections from one peer address (behind a proxy: 0, no limit)"),
        click.option("--connection-rate-per-address", type=some, default=d.connection_rate_per_address,
                     show_default=True, help="new TCP connections a second from one peer address, bursts of as "
                                             "many; more are dropped unanswered (behind a proxy: 0, no limit)"),
        click.option("--header-timeout", "header_timeout_s", type=seconds, default=d.header_timeout_s,
                     show_default=True, metavar="S", help="to send a request's headers (408 after)"),
        click.option("--body-timeout", "body_timeout_s", type=seconds, default=d.body_timeout_s, show_default=True,
                     metavar="S", help="to send a request's body once its headers are in (408 after)"),
        click.option("--keep-alive-timeout", "keep_alive_s", type=seconds, default=d.keep_alive_s,
                     show_default=True, metavar="S", help="an idle connection between requests is closed after"),
        click.option("--max-header-kib", type=count, default=d.max_header_bytes // 1024, show_default=True,
                     help="a request's line and headers (431 beyond)"),
        click.option("--max-body-mib", type=count, default=d.max_body_bytes // 2**20, show_default=True,
                     help="a request's body (413 beyond)"),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _limits_of(options: dict) -> Limits:
    """``Limits`` from ``_limit_options``' values."""
    fields = dict(options)
    for kind in ("portraits", "renders", "sessions"):
        fields[f"{kind}_per_minute"], fields[f"{kind}_per_minute_per_key"] = fields.pop(f"{kind}_rate")
    fields["max_header_bytes"] = fields.pop("max_header_kib") * 1024
    fields["max_body_bytes"] = fields.pop("max_body_mib") * 2**20
    return Limits(**fields)


keys_option = click.option("--keys", "keys_db", type=click.Path(dir_okay=False, path_type=Path),
                           help=f"the API key store [default: {keystore.default_path()}]")  # fmt: skip


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-sessions", type=click.IntRange(1, 256),
              help=f"live sessions at once (renders too, with --jobs 0); one more is told 'busy' "
                   f"[default: {Settings.max_sessions}; with --ray: max replicas x sessions per replica]")  # fmt: skip
@click.option("--portrait-dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep enrolled portraits' identity caches here (default: memory only)")  # fmt: skip
@click.option("--workers", type=click.IntRange(0, 256),
              help="worker processes that generate the live sessions, each placed on the least loaded "
                   "[default: one per core; 0: in the server's own process]")  # fmt: skip
@click.option("--jobs", default=Settings.jobs, show_default=True, type=click.IntRange(0, 64),
              help="processes that run enrolments and renders at the lowest priority, so that they never take "
                   "a live session's CPU (0: in the server's own threads, a render counted as a session)")  # fmt: skip
@click.option("--job-queue", default=Settings.job_queue, show_default=True, type=click.IntRange(0, 1024),
              help="enrolments and renders that wait for a job process; one more is told 'busy'")  # fmt: skip
@click.option("--threads", type=click.IntRange(1, 256),
              help="threads for the server process's blocking work [default: 2 per core; with workers or "
                   "--ray: 4 per session admitted + 4]")  # fmt: skip
@click.option("--ice-address", "ice_addresses", multiple=True, metavar="ADDRESS",
              help="WebRTC: offer this host address (repeatable; default: every interface but loopback). "
                   "--ice-address 127.0.0.1 for a browser on this machine with no network")  # fmt: skip
@click.option("--batching", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              callback=lambda ctx, param, value: {"auto": None, "on": True, "off": False}[value],
              help="run the model calls that sessions make at about the same time as one batch "
                   "(auto: on a GPU; on this 2-core CPU it measured no faster, see the README)")  # fmt: skip
@click.option("--audit-db", type=click.Path(dir_okay=False, path_type=Path),
              help="the audit log of sessions and enrolments [default: $SONIC_RT_HOME/audit.db, else "
                   "~/.local/state/sonic-rt/audit.db]")  # fmt: skip
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))  # fmt: skip
@click.option("--dev", is_flag=True,
              help="local development: no API keys, everyone is 'dev' (only on a loopback --host)")  # fmt: skip
@keys_option
@click.option("--allow-origin", "allowed_origins", multiple=True, metavar="ORIGIN", callback=_origins,
              help="browser pages at this origin (https://example.com) may use it too (repeatable)")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="serve HTTPS and WSS with this certificate (PEM; with --tls-key)")  # fmt: skip
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the certificate's private key (PEM)")  # fmt: skip
@click.option(
    "--ray",
    "use_ray",
    is_flag=True,
    help="run live sessions on Ray Serve generator replicas (this process stays the one port in front)",
)
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="with --ray: join this running Ray cluster ('auto', 'HOST:6379') instead of starting one here",
)
@click.option(
    "--replicas",
    default="1:2",
    show_default=True,
    metavar="MIN:MAX",
    callback=_replicas,
    help="with --ray: the generator replicas the autoscaler keeps between",
)
@click.option(
    "--sessions-per-replica",
    default=RaySettings.sessions_per_replica,
    show_default=True,
    type=click.IntRange(1, 64),
    help="with --ray: sessions per replica the autoscaler aims at",
)
@click.option(
    "--replica-gpus",
    default=RaySettings.replica_gpus,
    show_default=True,
    type=click.FloatRange(0, None),
    help="with --ray: Ray GPUs each replica takes (0.5: two replicas share a GPU)",
)
@click.option(
    "--replica-cpus",
    default=RaySettings.replica_cpus,
    show_default=True,
    type=click.FloatRange(0, None, min_open=True),
    help="with --ray: Ray CPUs each replica reserves",
)
@_limit_options
def serve(host: str, port: int, max_sessions: int | None, portrait_dir: Path | None, workers: int | None,
          jobs: int, job_queue: int, threads: int | None,
          ice_addresses: tuple[str, ...], batching: bool | None, audit_db: Path | None, log_level: str, dev: bool,
          keys_db: Path | None, allowed_origins: tuple[str, ...], tls_cert: Path | None, tls_key: Path | None,
          use_ray: bool, ray_address: str | None, replicas: tuple[int, int], sessions_per_replica: int,
          replica_gpus: float, replica_cpus: float, **limit_options) -> None:  # fmt: skip
    """Run the live server: the browser client, REST API, WebSocket stream and WebRTC on one port.

    Open http://HOST:PORT/ in a browser; the API is at /docs, the stream protocol in the README.
    Clients need an API key (`sonic-rt keys add NAME`), except with --dev on this machine.
    With --ray, live sessions run on generator replicas on Ray Serve, each session kept on one.
    What a client may hold and ask for is limited (--start-timeout and below; see the README).
    """
    limits = _limits_of(limit_options)
    # every refusal before anything heavy is imported or built
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both, or neither")
    ray_settings = None
    if use_ray:
        if importlib.util.find_spec("ray") is None:
            raise click.UsageError("--ray needs Ray Serve: pip install 'sonic-rt[ray]'")
        ray_settings = RaySettings(address=ray_address, min_replicas=replicas[0], max_replicas=replicas[1],
                                   sessions_per_replica=sessions_per_replica, replica_cpus=replica_cpus,
                                   replica_gpus=replica_gpus, batching=batching)  # fmt: skip
        if workers:
            raise click.UsageError("--workers goes without --ray: with --ray the replicas generate the sessions")
    elif ray_address is not None:
        raise click.UsageError("--ray-address goes with --ray")
    if max_sessions is None:  # the front end admits what the replicas hold at most
        max_sessions = ray_settings.max_replicas * sessions_per_replica if ray_settings else Settings.max_sessions
    if dev:
        if not is_loopback(host):
            raise click.UsageError(f"--dev serves without API keys, so only on a loopback address (127.0.0.1, ::1, "
                                   f"localhost), not --host {host}: create a key with `sonic-rt keys add NAME` "
                                   "and serve without --dev")  # fmt: skip
        if keys_db is not None:
            raise click.UsageError("--dev uses no API keys: leave out --keys, or --dev")
    else:
        keys_db = keys_db or keystore.default_path()
        if keystore.KeyStore(keys_db).active() == 0:
            raise click.UsageError(f"no API keys in {keys_db}: create one with `sonic-rt keys add NAME`, "
                                   "or run `sonic-rt serve --dev` for local development")  # fmt: skip
    if dev:
        click.echo("warning: development mode (--dev): no API keys, every requester is 'dev'", err=True)
    elif tls_cert is None and not is_loopback(host):
        click.echo(f"warning: no TLS on {host}: API keys travel in clear text (give --tls-cert and --tls-key, "
                   "or put a TLS proxy in front)", err=True)  # fmt: skip

    import cv2
    import torch
    import uvicorn

    from sonic_rt.provenance.audit import default_path

    from .app import create_app

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    torch.set_num_threads(1)  # each session's work is small: threads would only spin-wait
    cv2.setNumThreads(1)
    app = create_app(Settings(max_sessions=max_sessions, portrait_dir=portrait_dir, workers=workers,
                              jobs=jobs, job_queue=job_queue, threads=threads,
                              ice_addresses=ice_addresses or None, batching=batching, keys_db=None if dev else keys_db,
                              allowed_origins=allowed_origins, audit_db=audit_db or default_path(),
                              address=f"{host}:{port}", ray=ray_settings, limits=limits))  # fmt: skip
    tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert else {}
    from .connections import ensure_open_files, uvicorn_options

    if warning := ensure_open_files(limits.max_connections):
        click.echo(f"warning: {warning}", err=True)
    # the HTTP and WebSocket (websockets, sans-I/O) protocols come with the limits
    uvicorn.run(app, host=host, port=port, loop="uvloop", ws_max_size=WS_MAX_BYTES,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, log_level=log_level, **uvicorn_options(app, limits),
                **tls)  # fmt: skip


# -- API keys ---------------------------------------------------------------------------------------


def _store(keys_db: Path | None) -> keystore.KeyStore:
    return keystore.KeyStore(keys_db or keystore.default_path())


@main.group()
def keys() -> None:
    """API keys for `sonic-rt serve`: add, list, revoke (only a hash of each key is stored)."""


@keys.command("add")
@click.argument("name")
@click.option("--max-sessions", type=click.IntRange(1, None),
              help="live sessions and renders at once [default: the server's own limit]")  # fmt: skip
@click.option("--minutes-per-day", type=click.FloatRange(0, None, min_open=True),
              help="minutes of video per UTC day [default: unlimited]")  # fmt: skip
@keys_option
def keys_add(name: str, max_sessions: int | None, minutes_per_day: float | None, keys_db: Path | None) -> None:
    """Create a key named NAME and print it, once."""
    store = _store(keys_db)
    try:
        key, record = store.add(name, max_sessions, minutes_per_day)
    except keystore.KeyStoreError as err:
        raise click.ClickException(str(err)) from None
    click.echo(key)
    click.echo(f"created key {record.name!r} ({_limits(record)}) in {store.path}; it is shown only now: "
               "the store keeps only its hash", err=True)  # fmt: skip


@keys.command("list")
@keys_option
def keys_list(keys_db: Path | None) -> None:
    """The keys: name, visible prefix, limits, created, revoked."""
    records = _store(keys_db).list()
    if not records:
        click.echo("no keys (create one with `sonic-rt keys add NAME`)", err=True)
        return
    rows = [("NAME", "PREFIX", "SESSIONS", "MINUTES/DAY", "CREATED", "REVOKED")]
    for r in records:
        rows.append((r.name, r.prefix + "…", _or(r.max_sessions, "server's"), _or(r.minutes_per_day, "unlimited"),
                     r.created, r.revoked or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("name")
@keys_option
def keys_revoke(name: str, keys_db: Path | None) -> None:
    """Revoke the key named NAME: refused from the next request on (running sessions finish)."""
    try:
        record = _store(keys_db).revoke(name)
    except keystore.KeyStoreError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"revoked key {record.name!r} ({record.prefix}…) on {record.revoked}")


def _or(value, default: str) -> str:
    return default if value is None else f"{value:g}"


def _limits(record: keystore.KeyRecord) -> str:
    sessions = f"{record.max_sessions} sessions at once" if record.max_sessions else "the server's session limit"
    minutes = f"{record.minutes_per_day:g} minutes a day" if record.minutes_per_day else "unlimited minutes"
    return f"{sessions}, {minutes}"
