"""A live session generated somewhere else: in a worker process (``server.workers``) or on a Ray
Serve replica (``server.cluster``).

Both sides of that split live here. The front end holds a ``ProxySession``: it has the surface
of ``streaming.Session`` that the transports use (push audio, flush, interrupt, generate, next
frame, the animator's parameters), so ``LiveSession`` paces it, and the WebSocket and WebRTC
code serves it, exactly as a local one. Audio is checked and resampled on the front end, so
``Session.push_audio``'s errors are raised at once. The host — the process that really holds
the ``Session`` — carries out each call with ``host_call`` and generates ahead by itself between
calls, so ``generate`` is nothing for the front end to drive. How a call travels (a socket, a
Serve request) is the subclass's business. When the host is lost, a call raises
``GeneratorLost`` and the transport ends that session, and only that one, with that error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sonic_rt import audio
from sonic_rt.animator import Animator
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.errors import SonicError
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import Identity
from streaming.intake import MAX_BACKLOG_S, AudioIntake
from streaming.session import Session
from streaming.vad import VoiceActivity

# what the front end may call on a session (Session's own surface)
CALLS = frozenset({"fell_behind", "flush", "interrupt", "next_frame", "set_scales"})
# the host's session takes a little more audio than the front end lets wait, so that the front
# end's check, made on counters one frame old, is the one that refuses a chunk
HOST_BACKLOG_S = MAX_BACKLOG_S + 1.0


class GeneratorLost(SonicError):
    """The process holding a session (a worker, a Ray replica) died, stopped answering, or does not
    hold it (any more)."""

    code = "generator_lost"


@dataclass(frozen=True)
class Stats:
    """A session's counters, sent back with every frame."""

    frames_out: int
    backlog_ms: float
    filled_ms: float
    skipped_ms: float


def build_session(identity: Identity, model, idle, motion: MotionParams, video: VideoParams, marks: Marks,
                  runner=None, max_backlog_s: float = MAX_BACKLOG_S) -> Session:  # fmt: skip
    """A live ``Session`` for ``identity``, built the same wherever it runs (in the server, in a
    worker, on a replica), so that a session behaves the same everywhere."""
    animator = Animator(identity, model, idle, motion, video, render=False, marks=marks, runner=runner)
    return Session(animator, VoiceActivity(), max_backlog_s=max_backlog_s)


def stats(session: Session) -> Stats:
    return Stats(session.frames_out, session.backlog_ms, session.filled_ms, session.skipped_ms)


def host_call(session: Session, method: str, args: tuple = (), audio_in: list[tuple] = ()):
    """On the host: queue ``audio_in`` (16 kHz mono chunks, each with whether it is the client's and
    its script), then ``Session.method(*args)``; ``next_frame`` returns the frame and the ``Stats``."""
    if method not in CALLS:
        raise ValueError(f"not a session call: {method!r}")
    for samples, client, script in audio_in:
        session.push_audio(samples, client=client, script=script)
    target = session.animator if method == "set_scales" else session
    result = getattr(target, method)(*args)
    return (result, stats(session)) if method == "next_frame" else result


class ProxyAnimator:
    """What the transports read of a session's animator, kept on the front end."""

    def __init__(self, session: ProxySession, identity: Identity, motion: MotionParams, video: VideoParams,
                 marks: Marks, latency_ms: float) -> None:  # fmt: skip
        self._session = session
        self.identity, self.motion_params, self.video_params = identity, motion, video
        self.marks, self.latency_ms = marks, latency_ms

    @property
    def fps(self) -> int:
        return self.video_params.fps

    def set_scales(self, dynamic_scale: float | None = None, motion_scale: float | None = None) -> int:
        changes = {k: v for k, v in (("dynamic_scale", dynamic_scale), ("motion_scale", motion_scale)) if v is not None}
        params = dataclasses.replace(self.motion_params, **changes)  # ValueError out of range, before the call
        frame = self._session._call("set_scales", dynamic_scale, motion_scale)
        self.motion_params = params
        return frame


class ProxySession:
    """The front end's side of a session held elsewhere. Subclasses say how audio and calls travel:
    ``_send_audio``, ``_unsent_samples``, ``_drop_audio``, ``_call`` and ``close``."""

    # the host does, between calls: ``LiveSession`` does not call ``generate``, and pushes audio from
    # its event loop (``push_audio`` must only check the chunk and send it on, never wait for the host)
    generates_ahead = True

    def __init__(self, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks,
                 latency_ms: float) -> None:  # fmt: skip
        self.animator = ProxyAnimator(self, identity, motion, video, marks, latency_ms)
        self.fps = video.fps
        self._stats = Stats(0, 0.0, 0.0, 0.0)
        self._intake = AudioIntake()
        self.closed = False

    # the Session surface
    def push_audio(self, pcm, sample_rate: int = audio.SAMPLE_RATE, channels: int = 1, client: bool = True,
                   script=None) -> None:  # fmt: skip
        """Check and resample the chunk here (``Session.push_audio``'s errors, at once), then send it
        on, 16 kHz mono, with its ``script`` (phonemes) if it has one, or cut where the client's
        timings cover it, each piece with their marks."""
        waiting = int(self._stats.backlog_ms * audio.SAMPLE_RATE / 1000) + self._unsent_samples()
        samples = self._intake.take(pcm, sample_rate, channels, waiting, script)
        for piece, piece_script in self._intake.pieces(samples, client, script):
            self._send_audio(piece, client, piece_script)

    def place_timings(self, marks, offset: float | None = None) -> None:
        """``Session.place_timings``, kept here: the client's audio is cut by its timings before it
        is sent, and goes with their marks as its script."""
        self._intake.timings.place(marks, offset)

    def flush(self) -> None:
        self._call("flush")
        self._intake.timings.end_utterance()

    def interrupt(self) -> None:
        self._drop_audio()
        self._intake.reset()
        self._call("interrupt")

    def fell_behind(self, seconds: float) -> None:
        self._call("fell_behind", seconds)

    def generate(self) -> bool:
        """Nothing for the front end to drive: the host generates ahead by itself after each call."""
        return False

    def next_frame(self):
        frame, self._stats = self._call("next_frame")
        return frame

    @property
    def frames_out(self) -> int:
        return self._stats.frames_out

    @property
    def backlog_ms(self) -> float:
        return self._stats.backlog_ms

    @property
    def filled_ms(self) -> float:
        return self._stats.filled_ms

    @property
    def skipped_ms(self) -> float:
        return self._stats.skipped_ms

    # how audio and calls travel
    def _send_audio(self, samples, client: bool, script) -> None:
        raise NotImplementedError

    def _unsent_samples(self) -> int:
        """Samples sent (or to be sent) since the counters last came back."""
        raise NotImplementedError

    def _drop_audio(self) -> None:
        """An interrupt: audio not yet on the host is dropped, as the host drops what it holds."""

    def _call(self, method: str, *args):
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
