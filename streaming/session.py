"""One live session: audio chunks in, frames stamped on the audio timeline out.

The session is the synchronous core of the real-time engine; ``streaming.live`` drives it from
an event loop against a media clock. Audio arrives in chunks of any size, rate and channel
count and waits, resampled to 16 kHz, in a bounded inbox. ``generate`` feeds it to the
``Animator`` (motion only, a few frames ahead of playback: the motion model schedules each block
once the audio up to its end plus the look-ahead is present, and joins consecutive windows by
conditioning each on the previous one's tail); ``next_frame`` renders the next frame and its
slice of audio when the clock calls for it. When the audio has not arrived in time, the session
fills in silence so that the frame exists: silence is a state — the face idles at the same
frame rate — not a stall. Audio that comes after such a pause starts once a block of it is
there, so no silence is filled in between its first words. ``flush`` ends an utterance without
waiting for more audio;
``interrupt`` (barge-in) drops queued audio and frames at once and the face goes to rest.

Frames are numbered continuously from 0 (``OutFrame.index``, shown at ``index / fps``); every
frame carries exactly the audio that plays with it, so audio and video cannot drift apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sonic_rt import audio
from sonic_rt.animator import Animator, Frame, frames_for_samples
from sonic_rt.audio.phonetic import script_slice
from sonic_rt.audio.recognizer import DECODERS
from sonic_rt.audio.timings import Mark
from sonic_rt.audio.tts import Phoneme
from sonic_rt.render.renderer import Renderer

from .intake import MAX_BACKLOG_S, AudioIntake
from .timeline import AudioTimeline
from .vad import MODELS, VoiceActivity

AHEAD_FRAMES = 4  # motion generated ahead of playback; more only delays an interrupt's effect
CATCH_UP_MS = 100.0  # audio waiting beyond which silence arriving in real time is skipped ...
BURST_MS = 500.0  # ... unless this much waits: the client sends ahead on purpose, and its pauses are kept
IDLE_FRAMES = 5  # silence filled in for this long is a pause: audio after it starts with a cushion
ONSET_MS = 300.0  # and for this long nothing of it is skipped (voice activity may lag the first word)
# queued audio waits in pieces of at most a frame's worth and is judged for speech as it is animated,
# so no call into the session takes long however big a chunk was (one 4 s chunk, judged and animated
# at once, held the session for 280 ms: a frame came too late and the clock moved on)
PIECE = audio.SAMPLES_PER_FRAME


@dataclass(frozen=True)
class OutFrame:
    """Output frame ``index`` at ``pts = index / fps`` seconds on the session's timeline.

    ``image`` ``(S, S, 3)`` uint8 RGB; ``audio`` the 16 kHz float32 samples that play with it;
    ``motion`` the portrait-relative motion vector ``(DIM,)``; ``source`` the second of the
    client's audio the frame shows (``None`` while the session fills in silence or plays speech
    it made itself, ``say``); ``speech``
    whether that audio is speech; ``visemes`` the OVR viseme weights of the frame
    (``sonic_rt.audio.visemes``: the phonetic rows its motion was made from).
    """

    index: int
    pts: float
    image: np.ndarray
    audio: np.ndarray
    motion: np.ndarray
    source: float | None
    speech: bool
    visemes: np.ndarray | None = None


@dataclass(frozen=True)
class _Audio:
    samples: np.ndarray  # 16 kHz float32, at most PIECE of them
    source: float | None  # seconds of client audio at samples[0]
    script: tuple[Phoneme | Mark, ...] | None = None  # its phonemes, when the text is known or timed


class _Flush:
    """Inbox marker: the utterance ends here."""


class Session:
    """The live core for one portrait and one voice. Not thread-safe: drive it from one place."""

    generates_ahead = False  # its driver calls ``generate`` (a session held in another process: True)

    def __init__(
        self,
        animator: Animator,
        vad: VoiceActivity | None = None,
        *,
        max_backlog_s: float = MAX_BACKLOG_S,
        ahead_frames: int = AHEAD_FRAMES,
    ) -> None:
        self.animator = animator
        self.fps = animator.fps
        self._renderer = Renderer(animator.identity, animator.marks)
        self._vad = vad
        self._intake = AudioIntake(max_backlog_s)
        self._ahead = ahead_frames
        self._inbox: deque[_Audio | _Flush] = deque()
        self._backlog = 0  # samples in the inbox
        self._timeline = AudioTimeline()
        self._ready: deque[Frame] = deque()  # motion made, not yet rendered
        self._shift = 0  # animator frame = output frame + shift (moves at an interrupt)
        self.frames_out = 0
        self._idle_run = 0  # frames of silence filled in since the last audio
        self._since_pause = audio.SAMPLE_RATE  # samples of audio animated since the last pause
        # audio after a pause waits until a block of it is there: started with less, the next block
        # would be due before its audio, and silence would be filled in after the first 40 ms of
        # speech (measured: one frame, every utterance of a client sending at real-time pace). The
        # price is one frame of latency for that utterance, partly won back in its next pause.
        self._cushion = animator.motion_params.block_frames * audio.SAMPLE_RATE // self.fps
        self.filled_ms = 0.0  # silence filled in because audio had not arrived when a frame was due
        self.skipped_ms = 0.0  # silence skipped to win back latency
        self._owed = 0  # samples of latency gained by a stall (``fell_behind``, or speech late), not yet won back
        self._speaking = False  # the audio animated last was speech, and no flush has ended it

    # -- input -------------------------------------------------------------------------------

    @property
    def backlog_ms(self) -> float:
        """Audio received but not yet animated."""
        return self._backlog * 1000 / audio.SAMPLE_RATE

    def push_audio(self, pcm: np.ndarray, sample_rate: int = audio.SAMPLE_RATE, channels: int = 1,
                   client: bool = True, script: tuple[Phoneme, ...] | None = None) -> None:  # fmt: skip
        """Queue a chunk: int16 or float32, ``(n,)`` (interleaved) or ``(n, channels)``, any rate.
        ``client`` audio is counted as the client's own (frames say which second of it they show);
        speech the server made (``say``) is not: its frames have no ``source``. ``script``: the
        phonemes spoken in the chunk (times in seconds from its start; 16 kHz mono audio only),
        for speech whose text is known; otherwise the phones are recognised from the audio.

        Raises ``BadAudioChunk``/``BadSampleRate``/``BadChannelCount`` for a bad chunk and
        ``AudioOverflow`` when more than ``max_backlog_s`` would wait; a refused chunk changes nothing.
        """
        samples = self._intake.take(pcm, sample_rate, channels, waiting=self._backlog, script=script)
        received = self._intake.received
        for part, marks in self._intake.pieces(samples, client, script):
            for start in range(0, len(part), PIECE):
                source = (received + start) / audio.SAMPLE_RATE if client else None
                piece = part[start : start + PIECE]
                piece_script = None
                if marks is not None:
                    t0 = start / audio.SAMPLE_RATE
                    piece_script = script_slice(marks, t0, t0 + len(piece) / audio.SAMPLE_RATE)
                self._inbox.append(_Audio(piece, source, piece_script))
            received += len(part)
        self._backlog += len(samples)

    def place_timings(self, marks: tuple[Mark, ...], offset: float | None = None) -> None:
        """The client's phoneme/viseme timings (``sonic_rt.audio.timings.parse``) for its audio to come,
        from ``offset`` seconds of its audio (default: where the audio received so far ends); they
        drive the phonetic track where they cover the audio. Raises ``BadTimings`` (and changes
        nothing) for timings that go backwards or overlap ones placed before."""
        self._intake.timings.place(marks, offset)

    def flush(self) -> None:
        """End of an utterance: its last frames are made without waiting for more audio. Raises
        ``BadTimings`` (after ending the utterance) when timings placed ran past its audio."""
        self._inbox.append(_Flush())
        self._intake.timings.end_utterance()

    def fell_behind(self, seconds: float) -> None:
        """The driver's clock moved on ``seconds`` (its frames came that late: the machine or the
        transport stalled). The audio that went on arriving meanwhile waits that much longer: latency
        nobody asked for, which silence in it is skipped to win back even where so much waits that it
        would otherwise be taken for audio the client sent ahead on purpose."""
        self._owed += round(seconds * audio.SAMPLE_RATE)

    def interrupt(self) -> None:
        """Barge-in: drop queued audio and frames now; the next frame starts the face's return to rest."""
        self._inbox.clear()
        self._backlog = 0
        self._owed = 0
        self._speaking = False
        self._intake.reset()
        if self._vad is not None:
            self._vad.reset()
        self._ready.clear()
        self.animator.interrupt()
        next_frame = self.animator.frames_out
        self._shift = next_frame - self.frames_out
        self._timeline.clear_from(self._sample(next_frame))

    # -- output ------------------------------------------------------------------------------

    def generate(self) -> bool:
        """Animate queued audio until ``ahead_frames`` frames are ready; True if audio still waits
        that could be animated now."""
        while self._inbox and len(self._ready) < self._ahead:
            if self._idle_run >= IDLE_FRAMES:
                if self._backlog < self._cushion and not self._flush_waiting():
                    return False  # a new utterance after a pause: frames go on filling in silence before it
                self._since_pause = 0
            item = self._inbox.popleft()
            if isinstance(item, _Flush):
                self._fill(frames_for_samples(self.animator.audio_position, self.fps))
                self._speaking, self._owed = False, 0  # the utterance is over: so is what it owed
                continue
            self._backlog -= len(item.samples)
            speech = self._vad.push(item.samples) if self._vad is not None else False
            if self._skippable(speech):
                self.skipped_ms += len(item.samples) * 1000 / audio.SAMPLE_RATE
                self._owed = max(0, self._owed - len(item.samples))
                continue
            self._push(item.samples, item.source, speech, item.script)
            self._speaking = speech
            self._idle_run = 0
            self._since_pause += len(item.samples)
        return bool(self._inbox) and len(self._ready) < self._ahead

    def next_frame(self) -> OutFrame:
        """The next frame, rendered, with its audio: made from queued audio, or from silence
        filled in when the audio for it has not arrived."""
        if not self._ready:
            self.generate()
        if not self._ready:
            filled = self._fill(self.frames_out + self._shift + 1)
            self.filled_ms += filled * 1000 / audio.SAMPLE_RATE
            if self._speaking:  # the speech stopped coming mid-utterance: the rest comes late, and waits as long
                self._owed += filled
            elif self._idle_run >= IDLE_FRAMES:
                self._owed = 0  # a pause with nothing waiting: any stall before it is behind us
        frame = self._ready.popleft()
        start, end = self._sample(frame.index), self._sample(frame.index + 1)
        span = self._timeline.span_at(start)
        out = OutFrame(
            index=self.frames_out,
            pts=self.frames_out / self.fps,
            image=self._renderer.render(frame.motion),
            audio=self._timeline.read(start, end),
            motion=frame.motion,
            source=None if span is None else span.source_at(start),
            speech=span is not None and span.speech,
            visemes=frame.visemes,
        )
        self.frames_out += 1
        return out

    # -- inside ------------------------------------------------------------------------------

    def _push(self, samples: np.ndarray, source: float | None, speech: bool,
              script: tuple[Phoneme, ...] | None = None) -> None:  # fmt: skip
        self._timeline.write(self.animator.audio_position, samples, source, speech)
        self._ready.extend(self.animator.push(samples, script))

    def _fill(self, frames: int) -> int:
        """Push silence until the animator has made ``frames`` frames in all; returns the samples pushed."""
        silence = np.zeros(audio.SAMPLES_PER_FRAME, np.float32)
        pushed = 0
        while self.animator.frames_out < frames:
            self._push(silence, None, False)
            pushed += len(silence)
        self._idle_run += pushed // len(silence)
        return pushed

    def _flush_waiting(self) -> bool:
        return any(isinstance(item, _Flush) for item in self._inbox)

    def _skippable(self, speech: bool) -> bool:
        """Silence arriving in real time while audio and frames already wait: playing it only adds
        latency (after the client stalled and caught up, say, or the driver fell behind)."""
        waiting = self.backlog_ms + len(self._ready) * 1000 / self.fps
        onset = self._since_pause < ONSET_MS * audio.SAMPLE_RATE / 1000
        if self._vad is None or speech or onset or waiting <= CATCH_UP_MS:
            return False
        return waiting < BURST_MS or self._owed > 0

    def _sample(self, frame: int) -> int:
        return frame * audio.SAMPLE_RATE // self.fps


def stock(sessions: int, phones: bool = True) -> None:
    """Make ahead the parts slow to make of ``sessions`` sessions at once (``sonic_rt.spares``):
    their voice-activity models, and with ``phones`` (a model that reads phones) their phone
    decoders, so that none of those sessions holds the others' frames while it starts."""
    MODELS.stock(sessions)
    if phones:
        DECODERS.stock(sessions)
