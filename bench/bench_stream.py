"""Live-stream figures through the real server on loopback (issue 5).

A ``sonic-rt serve`` process is started on a free port; clients (``server.client``) stream real
speech (``../shared/data/audio/en_*``, or espeak-ng sentences when absent) in 20 ms chunks at
real-time pace, at 512 px, and measure what arrives:

- delivered frame rate and the largest gap between frames;
- latency from an audio chunk's sending to the arrival of the frame that shows it
  (``Media.source``), p50/p95 — against the same-run baseline: the session's algorithmic
  latency (block + look-ahead + lip-sync offset, from ``ready``) plus the chunk length;
- first frame after ``start`` (warm server, enrolled portrait);
- barge-in: from sending ``interrupt`` to the first frame made after it, and to the first
  frame whose mouth is back at rest (from the motion events);
- A/V drift over a long run: audio received vs video received, and frame arrival vs timestamp,
  first minute against last;
- concurrency: 1..N sessions at once; the server's CPU per session (same run) predicts a
  capacity to compare with the count that actually holds (every session >= 24.5 fps, no gap
  over 100 ms, no stall).

    python bench/bench_stream.py                       # all but the 10-minute drift run
    python bench/bench_stream.py --sections drift --drift-minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA  # noqa: E402
from server import protocol as p  # noqa: E402
from server.client import StreamClient  # noqa: E402

CHUNK_MS = 20


def speech_audio(seconds: float) -> np.ndarray:
    """Real speech, 16 kHz float32, looped to ``seconds``."""
    from sonic_rt.audio.decode import decode_audio

    files = sorted((SHARED_DATA / "audio").glob("en_*")) if SHARED_DATA.is_dir() else []
    if files:
        pieces = [decode_audio(f) for f in files]
    else:
        from sonic_rt.audio import tts

        pieces = [tts.synthesize(t).audio for t in ("Hello there, and welcome to the show.",
                                                    "Today we talk about streaming faces on a CPU.")]  # fmt: skip
    speech = np.concatenate(pieces)
    reps = int(np.ceil(seconds * 16000 / len(speech)))
    return np.tile(speech, reps)[: int(seconds * 16000)]


class Server:
    def __init__(self, max_sessions: int, extra: list[str], keys_db: Path | None = None,
                 log: Path | None = None) -> None:  # fmt: skip
        """``sonic-rt serve --dev`` on a free port; with ``keys_db``, with that key store instead of
        ``--dev``; its output to ``log`` (else nowhere)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("sonic-rt")
        self._audit = tempfile.TemporaryDirectory(prefix="sonic-rt-bench-")  # the bench's sessions, not yours
        self.audit_db = f"{self._audit.name}/audit.db"
        access = ["--keys", str(keys_db)] if keys_db is not None else ["--dev"]
        command = [str(exe), "serve", *access, "--port", str(self.port), "--max-sessions", str(max_sessions),
                   "--log-level", "warning", "--audit-db", self.audit_db, *extra]  # fmt: skip
        if log is None:
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"ws://127.0.0.1:{self.port}/v1/stream"
        import httpx

        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def processes(self) -> list[int]:
        """The server's process and its children (its worker processes)."""
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def cpu_seconds(self, children: bool = True) -> float:
        """CPU time (user + system) of the server's process, and of its worker processes with ``children``."""
        total = 0.0
        for pid in self.processes() if children else [self.proc.pid]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_mib(self) -> float:
        """Resident memory of the server's process and its worker processes."""
        total = 0.0
        for pid in self.processes():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            total += sum(int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS"))
        return total

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)  # a server on Ray stops its cluster first
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._audit.cleanup()


async def stream_session(url: str, speech: np.ndarray, params: dict, motion_events: bool = False) -> dict:
    """Stream ``speech`` at real-time pace, then flush; return what arrived."""
    async with StreamClient(url) as client:
        t_start = time.time()
        ready = await client.start(params=params, motion_events=motion_events)
        sender = asyncio.create_task(client.stream_audio(speech, CHUNK_MS))
        arrivals, pts, latency, audio_samples, first = [], [], [], 0, None
        end = len(speech) / 16000 - 0.2
        async for item in client:
            if sender.done() and time.time() - client.sent_chunks[-1].at > 1.0:
                break  # the end of the audio was silence the server skipped (to win back latency)
            if isinstance(item, dict):
                continue
            if item.kind == p.KIND_AUDIO:
                audio_samples += len(item.payload) // 2
                continue
            if first is None:
                first = item.received - t_start
            arrivals.append(item.received)
            pts.append(item.pts)
            if item.source is not None:
                sent = client.sent_at(item.source)
                if sent is not None:
                    latency.append(item.received - sent)
                if item.source >= end:
                    break
        await sender
        await client.stop()
    arrivals = np.array(arrivals)
    gaps = np.diff(arrivals)
    return {
        "ready": ready, "first_frame_s": first, "frames": len(arrivals),
        "fps": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), "max_gap_ms": gaps.max() * 1e3,
        "latency_ms": np.array(latency) * 1e3, "arrivals": arrivals, "pts": np.array(pts),
        "audio_s": audio_samples / 16000, "video_s": len(arrivals) / 25,
    }  # fmt: skip


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


async def latency_section(server: Server, seconds: float, params: dict, out: dict) -> None:
    speech = speech_audio(seconds)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    r = await stream_session(server.url, speech, params)
    cpu = (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    base = r["ready"]["latency_ms"] + CHUNK_MS
    lat = r["latency_ms"]
    print(f"\n== one session, {seconds:.0f} s of real speech at real-time pace, params {params or 'default'}")
    print(f"delivered {r['fps']:.2f} fps ({r['frames']} frames), largest gap {r['max_gap_ms']:.0f} ms")
    print(f"latency p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, max {lat.max():.0f} ms; "
          f"baseline (algorithmic {r['ready']['latency_ms']:.0f} + chunk {CHUNK_MS}) {base:.0f} ms: "
          f"p50 {pct(lat, 50) / base:.2f}x, p95 {pct(lat, 95) / base:.2f}x")  # fmt: skip
    print(f"server CPU {cpu * 100:.0f}% of one core for this session, RSS {server.rss_mib():.0f} MiB")
    out["latency"] = {"params": params, "fps": r["fps"], "max_gap_ms": r["max_gap_ms"], "p50_ms": pct(lat, 50),
                      "p95_ms": pct(lat, 95), "baseline_ms": base, "cpu_per_session": cpu}  # fmt: skip


async def first_frame_times(server: Server, runs: int) -> list[float]:
    """Milliseconds from sending ``start`` to the first video frame's arrival, one session at a time."""
    times = []
    for _ in range(runs):
        async with StreamClient(server.url) as client:
            t0 = time.time()
            await client.start()
            async for item in client:
                if not isinstance(item, dict) and item.kind == p.KIND_VIDEO:
                    times.append((item.received - t0) * 1e3)
                    break
            await client.stop()
    return times


async def first_frame_section(server: Server, runs: int, out: dict) -> None:
    times = await first_frame_times(server, runs)
    print(f"\n== first frame after start (warm, {runs} sessions): median {np.median(times):.0f} ms, "
          f"max {max(times):.0f} ms")  # fmt: skip
    out["first_frame_ms"] = {"median": float(np.median(times)), "max": max(times)}


async def barge_in_section(server: Server, runs: int, out: dict) -> None:
    to_first, to_rest = [], []
    text = "This is a long answer that goes on and on, so that the listener can cut it off in the middle."
    for _ in range(runs):
        async with StreamClient(server.url) as client:
            await client.start(motion_events=True)
            await client.say(text)
            rest, opening, t_cut, cut = None, {}, None, None
            async for item in client:
                if not isinstance(item, dict):
                    if t_cut is None and item.kind == p.KIND_VIDEO and item.speech and item.index > 40:
                        t_cut = time.time()
                        await client.interrupt()
                    if cut is not None and item.kind == p.KIND_VIDEO and item.index == cut:
                        to_first.append((item.received - t_cut) * 1e3)
                    continue
                if item["type"] == "motion":
                    values = item["values"]
                    opening[item["frame"]] = (values["jaw_open"] - values["mouth_close"], item["received"])
                    if rest is None and item["frame"] < 5:
                        continue
                    if cut is not None and item["frame"] >= cut and opening[item["frame"]][0] < -0.9:
                        to_rest.append((item["received"] - t_cut) * 1e3)
                        break
                elif item["type"] == "interrupted":
                    cut = item["frame"]
            await client.stop()
    print(f"\n== barge-in ({runs} interrupts mid-speech): to the first frame after it median "
          f"{np.median(to_first):.0f} ms (max {max(to_first):.0f}); to the mouth at rest median "
          f"{np.median(to_rest):.0f} ms (max {max(to_rest):.0f})")  # fmt: skip
    out["barge_in_ms"] = {"first_frame": float(np.median(to_first)), "at_rest": float(np.median(to_rest)),
                          "at_rest_max": max(to_rest)}  # fmt: skip


async def concurrency_section(server: Server, max_n: int, seconds: float, params: dict, out: dict) -> None:
    speech = speech_audio(seconds)
    print(f"\n== concurrent sessions, {seconds:.0f} s each of real speech at real-time pace")
    print("sessions  min fps  max gap  p50 lat  p95 lat  server CPU  holds")
    rows, holds = [], 0
    for n in range(1, max_n + 1):
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        results = await asyncio.gather(*[stream_session(server.url, speech, params) for _ in range(n)])
        cpu = (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        lat = np.concatenate([r["latency_ms"] for r in results])
        min_fps = min(r["fps"] for r in results)
        gap = max(r["max_gap_ms"] for r in results)
        ok = min_fps >= 24.5 and gap <= 100
        holds = n if ok and holds == n - 1 else holds
        rows.append({"sessions": n, "min_fps": min_fps, "max_gap_ms": gap, "p50_ms": pct(lat, 50),
                     "p95_ms": pct(lat, 95), "cpu": cpu, "holds": ok})  # fmt: skip
        print(f"{n:8d}  {min_fps:7.2f}  {gap:5.0f} ms  {pct(lat, 50):5.0f} ms  {pct(lat, 95):5.0f} ms  "
              f"{cpu * 100:8.0f}%  {'yes' if ok else 'no'}")  # fmt: skip
    per_session = rows[0]["cpu"]
    predicted = os.cpu_count() / per_session
    print(f"largest count that holds: {holds}; baseline from one session's CPU ({per_session * 100:.0f}% of a core): "
          f"{predicted:.1f} on {os.cpu_count()} cores -> measured/predicted {holds / predicted:.2f}")  # fmt: skip
    out["concurrency"] = {"rows": rows, "holds": holds, "predicted": predicted}


async def drift_section(server: Server, minutes: float, params: dict, out: dict) -> None:
    r = await stream_session(server.url, speech_audio(minutes * 60), params)
    lag = r["arrivals"] - r["arrivals"][0] - (r["pts"] - r["pts"][0])  # arrival vs timestamp
    minute = 25 * 60
    drift = (np.median(lag[-minute:]) - np.median(lag[:minute])) * 1e3
    av = (r["audio_s"] - r["video_s"]) * 1e3
    lat = r["latency_ms"]
    first, last = lat[: len(lat) // 10], lat[-len(lat) // 10 :]
    print(f"\n== drift over {minutes:g} min ({r['frames']} frames, {r['fps']:.3f} fps, "
          f"largest gap {r['max_gap_ms']:.0f} ms)")
    print(f"audio received - video received: {av:+.1f} ms; frame arrival vs timestamp, last minute - first: "
          f"{drift:+.1f} ms; latency p50 first 10% {pct(first, 50):.0f} ms, "
          f"last 10% {pct(last, 50):.0f} ms")  # fmt: skip
    out["drift"] = {"minutes": minutes, "av_ms": av, "clock_ms": drift, "fps": r["fps"],
                    "max_gap_ms": r["max_gap_ms"], "p50_first_ms": pct(first, 50), "p50_last_ms": pct(last, 50)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="latency,first,barge,concurrency")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the latency run")
    ap.add_argument("--concurrency-seconds", type=float, default=20.0)
    ap.add_argument("--max-sessions", type=int, default=6)
    ap.add_argument("--drift-minutes", type=float, default=10.0)
    ap.add_argument("--params", default="{}", help='session params as JSON, e.g. {"block_frames": 1}')
    ap.add_argument("--server-args", default="", help="extra `sonic-rt serve` options, e.g. '--workers 2'")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    params = json.loads(args.params)
    sections = args.sections.split(",")
    out: dict = {"cores": os.cpu_count(), "load_before": os.getloadavg()[0]}
    server = Server(max(args.max_sessions, 1) + 1, args.server_args.split())
    out["server_args"] = args.server_args
    print(f"load average before: {out['load_before']:.2f}")
    try:
        await first_frame_section(server, 1, {})  # warm-up: enrols the sample portrait
        if "latency" in sections:
            await latency_section(server, args.seconds, params, out)
        if "first" in sections:
            await first_frame_section(server, 10, out)
        if "barge" in sections:
            await barge_in_section(server, 5, out)
        if "concurrency" in sections:
            await concurrency_section(server, args.max_sessions, args.concurrency_seconds, params, out)
        if "drift" in sections:
            await drift_section(server, args.drift_minutes, params, out)
    finally:
        server.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    asyncio.run(main())
