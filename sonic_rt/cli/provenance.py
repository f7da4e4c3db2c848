"""``audit`` and ``watermark``: the audit log verified and listed, a video's watermark read and its session found."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from ..errors import AuditError
from .options import exit_on_bad_input

EXIT_TAMPERED = 1  # ``audit verify`` found problems
EXIT_NO_WATERMARK = 3  # ``watermark detect`` found none


@click.group()
def audit() -> None:
    """The tamper-evident audit log: every session and portrait, who asked, with what consent."""


db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path),
    help="the audit log [default: $SONIC_RT_HOME/audit.db, else ~/.local/state/sonic-rt/audit.db]",
)  # fmt: skip


def _open_log(db: Path | None):
    from ..provenance.audit import AuditLog, default_path

    path = db or default_path()
    if not path.is_file():
        raise click.ClickException(f"no audit log at {path}")
    try:
        return AuditLog(path)
    except AuditError as err:
        raise click.ClickException(f"[{err.code}] {err}") from err


@audit.command()
@db_option
def verify(db: Path | None) -> None:
    """Check every record's MAC, the chain and the head: exit 0 if untouched, else 1 with each problem."""
    with _open_log(db) as log:
        result = log.verify()
    if not result.ok:
        click.echo(f"FAILED: {len(result.problems)} problem(s) in {log.path}", err=True)
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_TAMPERED)
    head = f"head #{result.head_seq} {result.head_mac[:16]}" if result.head_seq else "empty"
    click.echo(f"OK: {result.records} records, {head}")


@audit.command()
@db_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="the newest N sessions")
@click.option("--json", "as_json", is_flag=True, help="print the sessions as JSON")
def show(db: Path | None, limit: int, as_json: bool) -> None:
    """List the newest sessions: when, how, who, from where, which portrait, watermark, what was made, how it ended."""
    with _open_log(db) as log:
        sessions = log.sessions(limit=limit)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in sessions], indent=2))
        return
    rows = [SESSION_COLUMNS, *(_session_row(s) for s in sessions)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SESSION_COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# what `audit show` and `watermark detect` print of a session
SESSION_COLUMNS = ("session", "started (UTC)", "transport", "requester", "client", "portrait", "watermark", "frames",
                   "seconds", "end")  # fmt: skip


def _session_row(s) -> tuple[str, ...]:
    """A session as ``SESSION_COLUMNS``."""

    def maybe(value, fmt: str = "{}") -> str:
        return "-" if value is None else fmt.format(value)

    return (
        s.id[:8], s.started[:19].replace("T", " "), maybe(s.transport), maybe(s.requester), maybe(s.client),
        maybe(s.portrait_sha256 and s.portrait_sha256[:12]), maybe(s.watermark, "{:08x}"), maybe(s.frames),
        maybe(s.seconds, "{:.2f}"), s.end_reason or ("open" if s.ended is None else "-"),
    )  # fmt: skip


@click.group()
def watermark() -> None:
    """The invisible watermark every generated frame carries: read it back from a video."""


@watermark.command()
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="read only the first S seconds")
@db_option
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def detect(video: Path, seconds: float | None, db: Path | None, as_json: bool) -> None:
    """Read the watermark of VIDEO and find its session in the audit log.

    Exit 0 when a watermark is found (with or without its record in this log), 3 when none is.
    """
    from ..provenance.audit import default_path
    from ..provenance.watermark import detect_video

    with exit_on_bad_input():
        found = detect_video(video, seconds)
    record = None
    path = db or default_path()
    if found.payload is not None and path.is_file():
        with _open_log(path) as log:
            record = log.find_watermark(found.payload)
    if as_json:
        click.echo(json.dumps({
            "video": str(video), "frames": found.frames, "strength": round(found.strength, 2),
            "payload": None if found.payload is None else f"{found.payload:08x}", "audit_log": str(path),
            "session": None if record is None else dataclasses.asdict(record),
        }, indent=2))  # fmt: skip
    elif found.payload is None:
        click.echo(f"no sonic-rt watermark in {video} ({found.frames} frames read, strength {found.strength:.1f})")
    else:
        click.echo(f"watermark {found.payload:08x} in {video} ({found.frames} frames, strength {found.strength:.1f})")
        if record is None:
            click.echo(f"no session with this watermark in {path}: it was made elsewhere or by the Python API")
        else:
            for name, value in zip(SESSION_COLUMNS, _session_row(record), strict=True):
                click.echo(f"  {name:14} {value}")
            click.echo(f"  {'session id':14} {record.id}")
            click.echo(f"  {'consent':14} {record.consent}")
    if found.payload is None:
        sys.exit(EXIT_NO_WATERMARK)
