"""The WebSocket protocol, version 1: JSON control messages and binary audio in; binary media
messages and JSON events out.

Client -> server:
  text   ``{"type": "start", "version": 1, "portrait": ID, "params": {...}, "audio": {...},
         "video": {...}, "motion_events": false, "viseme_events": false, "record": false,
         "api_key": KEY}`` — must come
         first (``api_key``: where the server needs keys and the handshake sent no
         ``Authorization: Bearer KEY`` header);
         ``{"type": "say", "text": ..., "voice": "en-us"}``; ``{"type": "flush"}``;
         ``{"type": "interrupt"}``; ``{"type": "params", "params": {"dynamic_scale": 1.2,
         "motion_scale": 0.8}}`` (either or both, mid-session); ``{"type": "timings", "format":
         "ipa", "marks": [...], "offset_ms": null, "end_ms": null}`` (the phonemes or visemes of the
         audio to come, from the client's own TTS: ``sonic_rt.audio.timings``); ``{"type": "stop"}``.
  binary raw PCM in the format ``start`` declared (``s16le`` or ``f32le``, interleaved), 10-100 ms
         a message is typical; no header.
Server -> client:
  text   events: ``ready``, ``speech_start``, ``speech_end``, ``interrupted``, ``stats``,
         ``params`` (the values now in force and the first ``frame`` they apply to),
         ``motion`` and ``visemes`` (when asked for), ``error`` (``code``, ``message``; the session goes on unless
         the event says ``fatal``), ``stopped``.
  binary ``HEADER`` + payload. ``kind`` 1 video (``codec`` 1 JPEG, 2 H.264 Annex B) or 2 audio
         (``codec`` 1: s16le, 16 kHz mono: exactly the samples that play with frame ``index``,
         sent just before it). ``pts_us`` is the frame's time on the session's timeline,
         ``source_us`` the time in the client's own audio that the frame shows (-1: silence the
         server filled in, or speech it made, ``say``), ``sent_us`` the server's wall clock (µs
         since the epoch) at sending.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sonic_rt.audio.timings import MAX_MARKS

VERSION = 1
PATH = "/v1/stream"
HEADER = struct.Struct("<BBHIqqq")  # kind, codec, flags, index, pts_us, source_us, sent_us
KIND_VIDEO, KIND_AUDIO = 1, 2
VIDEO_CODECS = {"jpeg": 1, "h264": 2}
AUDIO_S16LE_16K = 1
FLAG_KEYFRAME, FLAG_SPEECH = 1, 2
MAX_TEXT_BYTES = 64 * 1024
MAX_AUDIO_BYTES = 256 * 1024  # ~2.7 s of 48 kHz stereo s16: far beyond a 100 ms chunk
AUDIO_FORMATS = {"s16le": ("<i2", 2), "f32le": ("<f4", 4)}


class ProtocolError(Exception):
    """A message the protocol does not allow; ``code`` goes back to the client in an error event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _unicode(value: str) -> str:
    """Refuse a string with a lone surrogate (JSON allows the escape ``"\\ud800"``, Unicode does not):
    it could not be spoken, looked up or written back in an event."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode: it holds a lone surrogate (an escape \\ud800-\\udfff)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]  # a string field of a message


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionParams(_Message):
    """Sonic's parameters that apply to a live session (all optional)."""

    inference_steps: int | None = None
    dynamic_scale: float | None = None
    motion_scale: float | None = None
    smoothing: float | None = None
    seed: int | None = None
    block_frames: int | None = None
    lip_sync_offset_ms: float | None = None
    fps: int | None = None


class LiveParams(_Message):
    """The parameters a running session can change (sliders): motion amplitudes."""

    dynamic_scale: float | None = None
    motion_scale: float | None = None


class AudioFormat(_Message):
    format: Literal["s16le", "f32le"] = "s16le"
    sample_rate: int = 16000
    channels: int = 1


class VideoFormat(_Message):
    codec: Literal["jpeg", "h264"] = "jpeg"
    quality: int = Field(80, ge=10, le=100)


class Start(_Message):
    type: Literal["start"]
    version: int = VERSION
    portrait: Text = "sample:astronaut"
    params: SessionParams = SessionParams()
    audio: AudioFormat = AudioFormat()
    video: VideoFormat = VideoFormat()
    motion_events: bool = False
    viseme_events: bool = False  # a ``visemes`` event per frame: the 15 OVR viseme weights
    record: bool = False  # keep the session as an MP4 to download (``ready`` says where)
    label: bool = False  # draw a visible "AI-generated" label on the video
    # the API key, for browsers (a browser's WebSocket cannot send an Authorization header); never logged
    api_key: Text | None = Field(None, max_length=256, repr=False)


class Say(_Message):
    type: Literal["say"]
    text: Text
    voice: Text = "en-us"


class Flush(_Message):
    type: Literal["flush"]


class Interrupt(_Message):
    type: Literal["interrupt"]


class Params(_Message):
    type: Literal["params"]
    params: LiveParams


class Stop(_Message):
    type: Literal["stop"]


class Timings(_Message):
    """Phonemes or visemes of the client's audio to come, in one of ``sonic_rt.audio.timings.FORMATS``
    (each mark's fields are that vocabulary's, read by ``sonic_rt.audio.timings.parse``)."""

    type: Literal["timings"]
    format: Literal["ipa", "arpabet", "espeak", "polly", "azure"]
    marks: list[dict] = Field(max_length=MAX_MARKS)
    offset_ms: float | None = Field(None, ge=0)  # where on the client's audio they start (default: where it ends now)
    end_ms: float | None = Field(None, gt=0)  # where the last mark ends, when it has no end of its own


Control = Annotated[Start | Say | Flush | Interrupt | Params | Timings | Stop, Field(discriminator="type")]
_CONTROL = TypeAdapter(Control)
TYPES = ("start", "say", "flush", "interrupt", "params", "timings", "stop")


def parse_control(text: str) -> Start | Say | Flush | Interrupt | Params | Timings | Stop:
    """One text message -> a control message; raises ``ProtocolError`` with the code to answer."""
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ProtocolError("message_too_large", f"text messages are limited to {MAX_TEXT_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ProtocolError("bad_json", f"not JSON: {err}") from None
    except RecursionError:  # arrays or objects nested thousands deep: the parser's stack runs out
        raise ProtocolError("bad_json", "not JSON this server reads: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", 'a control message is a JSON object with a "type"')
    if data["type"] not in TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {data['type']!r}; known: {', '.join(TYPES)}")
    try:
        message = _CONTROL.validate_python(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'message'}: {e['msg']}" for e in err.errors())
        raise ProtocolError("bad_message", f"bad {data['type']!r} message: {problems}") from None
    if isinstance(message, Start) and message.version != VERSION:
        raise ProtocolError("unsupported_version", f"this server speaks protocol version {VERSION}")
    return message


@dataclass(frozen=True)
class Media:
    """One binary message from the server."""

    kind: int
    codec: int
    flags: int
    index: int
    pts: float
    source: float | None
    sent: float  # server wall clock, seconds since the epoch
    payload: bytes
    received: float = 0.0  # client wall clock at arrival (set by the client)

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)

    @property
    def speech(self) -> bool:
        return bool(self.flags & FLAG_SPEECH)


def pack_media(kind: int, codec: int, flags: int, index: int, pts: float, source: float | None,
               sent: float, payload: bytes) -> bytes:  # fmt: skip
    source_us = -1 if source is None else round(source * 1e6)
    return HEADER.pack(kind, codec, flags, index, round(pts * 1e6), source_us, round(sent * 1e6)) + payload


def unpack_media(data: bytes) -> Media:
    if len(data) < HEADER.size:
        raise ProtocolError("bad_media", f"a media message has a {HEADER.size}-byte header")
    kind, codec, flags, index, pts_us, source_us, sent_us = HEADER.unpack_from(data)
    source = None if source_us < 0 else source_us / 1e6
    return Media(kind, codec, flags, index, pts_us / 1e6, source, sent_us / 1e6, data[HEADER.size :])


def pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (clipped, rounded), the wire format of the audio."""
    return np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)


def error_event(code: str, message: str, fatal: bool = False) -> dict:
    return {"type": "error", "code": code, "message": message, "fatal": fatal}
