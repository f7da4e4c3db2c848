"""The front end's side of a session that runs on a generator replica.

``RemoteSession`` has the surface of ``streaming.Session`` that the transports use (push audio,
flush, interrupt, generate, next frame, the animator's parameters), so ``LiveSession`` paces it,
and the WebSocket and WebRTC code serves it, exactly as a local one. Each call is a blocking
Serve request (``LiveSession`` makes it on its thread pool), routed by the session's id to its
replica (``routing``). A Serve call costs milliseconds (measured: ~5 ms round trip on a 2-core
host), so a session makes one per frame: audio is checked and resampled here as it comes and
rides along with the next call, and the replica generates ahead by itself (``generate`` is
not called across the network). Audio therefore reaches the replica up to one frame later than
it reaches a local session. When that replica dies — mid-call, or before — the call raises
``GeneratorLost`` and the transport ends this session, and only this one, with that error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid

from ray import exceptions as ray_errors

from sonic_rt import audio
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.identity import Identity
from sonic_rt.marks import Marks
from streaming.intake import AudioIntake

from .generator import LOST, GeneratorLost, Opened, Stats

OPEN_TIMEOUT_S = 60.0  # a replica being started by the autoscaler loads torch and the model first
CALL_TIMEOUT_S = 10.0  # a call takes milliseconds; this long means the replica is stuck


class RemoteAnimator:
    """What the transports read of a session's animator, kept on the front end."""

    def __init__(self, session: RemoteSession, identity: Identity, motion: MotionParams, video: VideoParams,
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


class RemoteSession:
    """A live session held by a generator replica; ``handle`` is the Generator deployment's."""

    def __init__(self, handle, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks) -> None:
        self.id = uuid.uuid4().hex
        self._handle = handle.options(session_id=self.id, _by_reference=False)  # gRPC: half the CPU per call
        opened: Opened = self._result(self._handle.open.remote(self.id, identity, motion, video, marks), OPEN_TIMEOUT_S)
        self.replica, self.pid = opened.replica, opened.pid
        self.animator = RemoteAnimator(self, identity, motion, video, marks, opened.latency_ms)
        self.fps = video.fps
        self._stats = Stats(0, 0.0, 0.0, 0.0)
        self._intake = AudioIntake()
        self._pending: list[tuple] = []  # 16 kHz audio not yet sent, whether it is the client's, its script
        self._pending_samples = 0
        self.closed = False

    # the Session surface
    def push_audio(self, pcm, sample_rate: int = audio.SAMPLE_RATE, channels: int = 1, client: bool = True,
                   script=None) -> None:  # fmt: skip
        """Check and resample the chunk here (``Session.push_audio``'s errors, at once); it travels
        to the replica with the next call, 16 kHz mono, with its ``script`` (phonemes) if it has
        one: one call per frame, not one per chunk."""
        waiting = int(self._stats.backlog_ms * audio.SAMPLE_RATE / 1000) + self._pending_samples
        samples = self._intake.take(pcm, sample_rate, channels, waiting)
        self._pending.append((samples, client, script))
        self._pending_samples += len(samples)

    def flush(self) -> None:
        self._call("flush")

    def interrupt(self) -> None:
        self._take_pending()  # dropped, as the replica drops what it holds
        self._intake.reset()
        self._call("interrupt")

    def generate(self) -> bool:
        """Nothing for the front end to drive: the replica generates ahead by itself after each call."""
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

    def close(self) -> None:
        """End the session on its replica (best effort: a dead replica has nothing left to end)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(GeneratorLost):
            self._result(self._handle.close.remote(self.id), CALL_TIMEOUT_S)

    # inside
    def _call(self, method: str, *args):
        if self.closed:
            raise GeneratorLost("this session has ended")
        pending = self._take_pending()
        return self._result(self._handle.call.remote(self.id, pending, method, *args), CALL_TIMEOUT_S)

    def _take_pending(self) -> list[tuple]:
        pending, self._pending, self._pending_samples = self._pending, [], 0
        return pending

    @staticmethod
    def _result(response, timeout_s: float):
        try:
            return response.result(timeout_s=timeout_s)
        except GeneratorLost:
            raise GeneratorLost(LOST) from None  # without Ray's wrapping of the replica's traceback
        except (ray_errors.RayActorError, ray_errors.ActorUnavailableError) as err:
            raise GeneratorLost(LOST) from err
        except TimeoutError as err:
            raise GeneratorLost(f"the generator replica serving this session did not answer in {timeout_s:g} s; "
                                "start a new session") from err  # fmt: skip
