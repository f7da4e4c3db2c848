"""The soak: the largest session count this machine holds in real time, for ten minutes, through the
real server on loopback — and one more, refused.

A ``sonic-rt serve --max-sessions N`` process; N clients (``server.client``) stream real speech
(looped) in 20 ms chunks at real-time pace, at 512 px, and measure every frame that arrives. Every
``--window`` seconds the bench prints, over that window: the lowest frame rate of any session,
the largest gap between two frames, latency p50/p95 (audio chunk sent -> frame showing it
arrived; baseline in the same run: the session's algorithmic latency + the chunk, from
``ready``), the server's resident memory and CPU. Once a minute another client asks for one
session more than the server holds and must be told ``busy`` at once. At the end the server's
audit log must verify, with every session started also ended.

Flat means: the last window's frame rate, latency and memory against the first window's (and
the memory's slope over the run, MiB per minute).

First, in the same server, one session alone for ``--baseline-minutes``: its latency p95 is the
figure the N sessions are held to. N sessions *hold* when every session makes >= 24.5 fps in
every window (a minute by default), no gap between two frames is over 100 ms, and the latency
p95 stays within 1.3x of the one session's. CPU (the server's process and its worker processes,
user + system) is reported per session per frame, split between the front end and the workers.

    python bench/bench_soak.py [--sessions 4] [--minutes 10] [--window 60] [--baseline-minutes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_stream import CHUNK_MS, Server, pct, speech_audio  # noqa: E402
from server import protocol as p  # noqa: E402
from server.client import StreamClient, StreamError  # noqa: E402

SAMPLE_EVERY_S = 5.0
HOLD_FPS = 24.5  # every session, every window
HOLD_GAP_MS = 100.0
HOLD_P95 = 1.3  # x the one session's p95


class Soaked:
    """What one session received: each video frame's arrival time and, where it shows audio the
    client sent, the latency."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latency: list[tuple[float, float]] = []  # (arrival, seconds)
        self.ready: dict | None = None
        self.error: str | None = None


async def soak_session(url: str, speech: np.ndarray, until: float, out: Soaked) -> None:
    async with StreamClient(url) as client:
        out.ready = await client.start()
        sender = asyncio.create_task(client.stream_audio(speech, CHUNK_MS))
        try:
            async for item in client:
                if time.time() >= until:
                    break
                if isinstance(item, dict):
                    if item["type"] == "error":
                        out.error = item["code"]
                    continue
                if item.kind != p.KIND_VIDEO:
                    continue
                out.arrivals.append(item.received)
                if item.source is not None and (sent := client.sent_at(item.source)) is not None:
                    out.latency.append((item.received, item.received - sent))
        finally:
            sender.cancel()
        await client.stop()


async def one_more(url: str) -> str:
    """Ask for a session beyond the server's limit; returns the error code it got (``busy`` expected)."""
    try:
        async with StreamClient(url) as client:
            ready = await asyncio.wait_for(client.start(), 10)
            await client.stop()
            return f"accepted ({ready['type']})"
    except StreamError as err:
        return err.code
    except (TimeoutError, OSError) as err:
        return f"no answer ({type(err).__name__})"


def window_row(sessions: list[Soaked], t0: float, t1: float) -> dict:
    fps, gaps = [], []
    for s in sessions:
        arrivals = np.array([a for a in s.arrivals if t0 <= a < t1])
        fps.append(len(arrivals) / (t1 - t0))
        gaps.append(float(np.diff(arrivals).max()) * 1e3 if len(arrivals) > 1 else float("inf"))
    latency = [lat * 1e3 for s in sessions for at, lat in s.latency if t0 <= at < t1]
    return {"min_fps": min(fps), "max_gap_ms": max(gaps), "p50_ms": pct(latency, 50), "p95_ms": pct(latency, 95)}


async def soak(server: Server, sessions: int, minutes: float, window: float) -> dict:
    speech = speech_audio(120.0)  # looped by the sender's index: the stream never runs out
    speech = np.tile(speech, int(np.ceil(minutes * 60 / 120.0)) + 1)
    start = time.time()
    until = start + minutes * 60
    soaked = [Soaked() for _ in range(sessions)]
    tasks = [asyncio.create_task(soak_session(server.url, speech, until, s)) for s in soaked]
    memory, cpu_marks, refusals = [], [(time.time(), server.cpu_seconds())], []
    front0, cpu0 = server.cpu_seconds(children=False), server.cpu_seconds()
    next_try = start + 20  # once the sessions run, and once a minute after
    while time.time() < until and not any(t.done() for t in tasks):
        await asyncio.sleep(SAMPLE_EVERY_S)
        memory.append((time.time(), server.rss_mib()))
        cpu_marks.append((time.time(), server.cpu_seconds()))
        if time.time() >= next_try:
            refusals.append(await one_more(server.url))
            next_try += 60
    await asyncio.gather(*tasks)
    front, total = server.cpu_seconds(children=False) - front0, server.cpu_seconds() - cpu0
    rows = []
    print(f"\n{'window':>12}  min fps  max gap  p50 lat  p95 lat  RSS MiB  server CPU")
    for k, t0 in enumerate(np.arange(start + 5, until - window / 2, window)):  # the first 5 s: sessions starting
        t1 = min(t0 + window, until)
        row = window_row(soaked, t0, t1)
        row["rss_mib"] = float(np.mean([m for t, m in memory if t0 <= t < t1] or [float("nan")]))
        marks = [(t, c) for t, c in cpu_marks if t0 - SAMPLE_EVERY_S <= t <= t1]
        row["cpu"] = (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]) if len(marks) > 1 else float("nan")
        rows.append(row)
        print(f"{k * window:5.0f}-{k * window + (t1 - t0):4.0f} s  {row['min_fps']:7.2f}  {row['max_gap_ms']:5.0f} ms"
              f"  {row['p50_ms']:5.0f} ms  {row['p95_ms']:5.0f} ms  {row['rss_mib']:7.1f}  {row['cpu'] * 100:8.0f}%")
    times, rss = np.array([t for t, _ in memory]), np.array([m for _, m in memory])
    slope = float(np.polyfit((times - times[0]) / 60, rss, 1)[0]) if len(rss) > 2 else float("nan")
    algorithmic = soaked[0].ready["latency_ms"] + CHUNK_MS
    all_latency = [lat * 1e3 for s in soaked for _, lat in s.latency]
    return {"rows": rows, "rss_slope_mib_per_min": slope, "refusals": refusals, "baseline_ms": algorithmic,
            "errors": [s.error for s in soaked if s.error], "p50_ms": pct(all_latency, 50),
            "p95_ms": pct(all_latency, 95), "p99_ms": pct(all_latency, 99),
            "frames": sum(len(s.arrivals) for s in soaked), "front_cpu_s": front, "cpu_s": total}  # fmt: skip


def audit_check(server: Server) -> tuple[bool, int, int]:
    from sonic_rt.provenance.audit import AuditLog

    with AuditLog(Path(server.audit_db)) as log:
        ok = log.verify().ok
        found = log.sessions(limit=100_000)
    return ok, len(found), sum(s.ended is not None for s in found)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=4, help="sessions at once (the largest count that holds)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=60.0, help="seconds per row of the table")
    ap.add_argument("--baseline-minutes", type=float, default=1.0, help="one session alone first, for its p95")
    ap.add_argument("--server-args", default="", help="more `sonic-rt serve` options")
    args = ap.parse_args()
    server = Server(args.sessions, args.server_args.split())
    try:
        print(f"baseline: one session alone for {args.baseline_minutes:g} min")
        alone = await soak(server, 1, args.baseline_minutes, args.window)
        print(f"\nsoak: {args.sessions} sessions of real speech at real-time pace for {args.minutes:g} min, "
              f"512 px; the server holds {args.sessions} (--max-sessions), one more is asked for once a minute")
        result = await soak(server, args.sessions, args.minutes, args.window)
        await asyncio.sleep(2)  # the sessions' end records
        verified, started, ended = audit_check(server)
    finally:
        server.close()
    rows = result["rows"]
    first, last = rows[0], rows[-1]
    print(f"\nframes received: {result['frames']}; latency over the run p50 / p95 / p99: {result['p50_ms']:.0f} / "
          f"{result['p95_ms']:.0f} / {result['p99_ms']:.0f} ms (baseline: algorithmic + chunk = "
          f"{result['baseline_ms']:.0f} ms: {result['p50_ms'] / result['baseline_ms']:.2f}x / "
          f"{result['p95_ms'] / result['baseline_ms']:.2f}x)")  # fmt: skip
    print(f"lowest frame rate of any session in any window: {min(r['min_fps'] for r in rows):.2f} fps; "
          f"largest gap: {max(r['max_gap_ms'] for r in rows):.0f} ms")  # fmt: skip
    print(f"first window -> last: min fps {first['min_fps']:.2f} -> {last['min_fps']:.2f}, p95 {first['p95_ms']:.0f}"
          f" -> {last['p95_ms']:.0f} ms, RSS {first['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB "
          f"(slope {result['rss_slope_mib_per_min']:+.2f} MiB/min)")  # fmt: skip
    refused = sum(code == "busy" for code in result["refusals"])
    print(f"admission control: {refused} of {len(result['refusals'])} requests for one session more told 'busy' "
          f"({', '.join(sorted(set(result['refusals'])))})")  # fmt: skip
    print(f"session errors: {result['errors'] or 'none'}; audit log: {'verifies' if verified else 'FAILS'}, "
          f"{started} sessions started, {ended} ended")  # fmt: skip
    per_frame = 1e3 / max(result["frames"], 1)
    front, workers = result["front_cpu_s"] * per_frame, (result["cpu_s"] - result["front_cpu_s"]) * per_frame
    print(f"CPU per session per frame: {front + workers:.2f} ms (front end {front:.2f} ms, workers {workers:.2f} ms); "
          f"one session alone: {alone['cpu_s'] * 1e3 / max(alone['frames'], 1):.2f} ms")  # fmt: skip
    worst_fps, worst_gap = min(r["min_fps"] for r in rows), max(r["max_gap_ms"] for r in rows)
    worst_p95 = max(r["p95_ms"] for r in rows)
    holds = worst_fps >= HOLD_FPS and worst_gap <= HOLD_GAP_MS and worst_p95 <= HOLD_P95 * alone["p95_ms"]
    print(f"one session alone: p95 {alone['p95_ms']:.0f} ms; {args.sessions} sessions: worst window p95 "
          f"{worst_p95:.0f} ms = {worst_p95 / alone['p95_ms']:.2f}x (hold: <= {HOLD_P95}x), lowest fps {worst_fps:.2f} "
          f"(>= {HOLD_FPS}), largest gap {worst_gap:.0f} ms (<= {HOLD_GAP_MS:.0f}): "
          f"{'HOLDS' if holds and not result['errors'] else 'does not hold'}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
