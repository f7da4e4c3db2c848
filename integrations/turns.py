"""The agent's turns on the session's output: which frames play which turn, and where each ends.

A turn is one utterance of the agent (pipecat: ``TTSStartedFrame`` to ``TTSStoppedFrame``;
LiveKit: audio frames up to ``AudioSegmentEnd``). Its audio goes into the session back to back
on the client timeline (the seconds ``OutFrame.source`` counts), so a frame's ``source`` says
which turn it plays: the turn starts with its first frame and ends with the frame that reaches
the end of its audio, whose speech is cut there (so the playback position reported is the
turn's length, not a whole number of frames). A turn's tail can go unseen (silence the session
skipped to win back latency): it ends after ``LOST_FRAMES`` frames without any of its audio, or
at the first frame of a later turn. An interrupt drops every turn at once.

Pure bookkeeping, no clock: ``push``/``end``/``interrupt`` as the audio goes into the session,
``play`` for each frame as it goes out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sonic_rt.audio import SAMPLE_RATE

SLACK_S = 0.002  # a frame within this of a turn's end reaches it (rounding of the timeline's seconds)
LOST_FRAMES = 3  # frames without any of a started, ended turn's audio: its tail was skipped, it is over
UNHEARD_FRAMES = 25  # the same for an ended turn none of whose audio showed (all of it skipped)


@dataclass(frozen=True)
class TurnEnd:
    """A turn has played out: ``position`` seconds of it were heard (``heard``: any at all)."""

    position: float
    heard: bool


@dataclass(frozen=True)
class Played:
    """What an output frame plays of the agent's turns, in the order to report it: turns that
    ``ended`` before it (their tails went unseen), whether it ``started`` a turn, its ``speech``
    (16 kHz float32 of the turn, cut at the turn's end; None: the face is idle) and, when it is
    its turn's last frame, that turn's end (``finished``)."""

    ended: tuple[TurnEnd, ...] = ()
    started: bool = False
    speech: np.ndarray | None = None
    finished: TurnEnd | None = None


@dataclass
class _Turn:
    start: float  # seconds on the client timeline
    end: float | None = None  # known once the turn is ended
    played: float = 0.0  # seconds of it played out
    started: bool = False
    idle: int = 0  # frames since its end without any of its audio


class Turns:
    """The turns of one session's agent, from the audio pushed and the frames played."""

    def __init__(self) -> None:
        self._turns: deque[_Turn] = deque()
        self.position = 0  # 16 kHz samples of agent audio pushed into the session so far

    @property
    def open(self) -> bool:
        """A turn is taking audio (pushed, not yet ended)."""
        return bool(self._turns) and self._turns[-1].end is None

    @property
    def pending(self) -> bool:
        """Some turn has not played out yet."""
        return bool(self._turns)

    def push(self, samples: int) -> None:
        """``samples`` (16 kHz) of the agent's audio go into the session; the first of a turn starts it."""
        if not self.open:
            self._turns.append(_Turn(self.position / SAMPLE_RATE))
        self.position += samples

    def end(self) -> None:
        """The turn taking audio ends where its audio ends (nothing, if no turn takes audio)."""
        if self.open:
            self._turns[-1].end = self.position / SAMPLE_RATE

    def interrupt(self) -> float | None:
        """Barge-in: every turn is dropped (the session drops their audio); the next push starts a
        new one. Returns how far the turn being played had got (None: none was playing)."""
        playing = self._turns[0] if self._turns and self._turns[0].started else None
        self._turns.clear()
        return None if playing is None else round(playing.played, 6)

    def play(self, source: float | None, audio: np.ndarray) -> Played:
        """Account for the frame showing client audio from ``source`` seconds (None: the session's
        own silence) and playing ``audio`` (16 kHz)."""
        ended = []
        while self._turns and source is not None and self._past(self._turns[0], source):
            ended.append(self._close(self._turns.popleft()))
        if not self._turns or source is None or source < self._turns[0].start - SLACK_S:
            return Played(tuple(ended), finished=self._idle())
        turn = self._turns[0]
        started, turn.started, turn.idle = not turn.started, True, 0
        n = len(audio)
        if turn.end is not None:
            n = max(0, min(n, round((turn.end - source) * SAMPLE_RATE)))
        turn.played += n / SAMPLE_RATE
        finished = None
        if turn.end is not None and source + len(audio) / SAMPLE_RATE >= turn.end - SLACK_S:
            finished = self._close(self._turns.popleft())
        return Played(tuple(ended), started, audio[:n], finished)

    def _idle(self) -> TurnEnd | None:
        """A frame without any turn's audio: an ended turn that has gone unseen long enough is over."""
        if not self._turns or self._turns[0].end is None:
            return None
        turn = self._turns[0]
        turn.idle += 1
        if turn.idle < (LOST_FRAMES if turn.started else UNHEARD_FRAMES):
            return None
        return self._close(self._turns.popleft())

    @staticmethod
    def _past(turn: _Turn, source: float) -> bool:
        return turn.end is not None and source >= turn.end - SLACK_S

    @staticmethod
    def _close(turn: _Turn) -> TurnEnd:
        return TurnEnd(round(turn.played, 6), turn.started)
