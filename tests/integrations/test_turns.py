"""The agent's turns on the output: which frames play them, where they end, what an interrupt cuts."""

import numpy as np
import pytest

from integrations.turns import LOST_FRAMES, UNHEARD_FRAMES, TurnEnd, Turns
from sonic_rt.audio import SAMPLE_RATE, SAMPLES_PER_FRAME

SPF = SAMPLES_PER_FRAME
FRAME_S = SPF / SAMPLE_RATE


def frame(source):
    return source, np.ones(SPF, np.float32)


def test_a_turn_starts_with_its_first_frame_and_finishes_at_its_end():
    turns = Turns()
    turns.push(SPF * 10 + 123)  # 10 frames and a bit
    turns.end()
    idle = turns.play(*frame(None))
    assert not idle.started and idle.speech is None and idle.finished is None
    played = [turns.play(*frame(i * FRAME_S)) for i in range(11)]
    assert played[0].started and not any(p.started for p in played[1:])
    assert [len(p.speech) for p in played] == [SPF] * 10 + [123]  # the last frame cut where the audio ends
    assert [p.finished for p in played[:-1]] == [None] * 10
    assert played[-1].finished == TurnEnd(pytest.approx((SPF * 10 + 123) / SAMPLE_RATE, abs=1e-5), True)
    assert turns.play(*frame(None)).finished is None  # nothing left


def test_a_turn_not_yet_ended_does_not_finish():
    turns = Turns()
    turns.push(SPF * 2)
    played = [turns.play(*frame(i * FRAME_S)) for i in range(2)]
    assert played[0].started and all(p.finished is None for p in played)
    for _ in range(LOST_FRAMES + 2):  # the TTS is slow: the face idles inside the turn
        assert turns.play(*frame(None)).finished is None
    turns.push(SPF)
    turns.end()
    last = turns.play(*frame(2 * FRAME_S))
    assert not last.started and last.finished == TurnEnd(pytest.approx(3 * FRAME_S, abs=1e-5), True)


def test_a_tail_that_never_shows_ends_the_turn_after_a_few_frames():
    turns = Turns()
    turns.push(SPF * 5)
    turns.end()
    for i in range(3):
        turns.play(*frame(i * FRAME_S))  # the last two frames' audio was skipped as silence
    ends = [turns.play(*frame(None)).finished for _ in range(LOST_FRAMES)]
    assert ends[:-1] == [None] * (LOST_FRAMES - 1)
    assert ends[-1] == TurnEnd(pytest.approx(3 * FRAME_S, abs=1e-5), True)


def test_a_turn_none_of_which_showed_ends_unheard():
    turns = Turns()
    turns.push(SPF)
    turns.end()
    ends = [turns.play(*frame(None)).finished for _ in range(UNHEARD_FRAMES)]
    assert ends[-1] == TurnEnd(0.0, False) and ends[:-1] == [None] * (UNHEARD_FRAMES - 1)


def test_the_next_turns_first_frame_ends_the_one_before():
    turns = Turns()
    turns.push(SPF * 3)
    turns.end()
    turns.push(SPF * 2)
    turns.end()
    turns.play(*frame(0.0))  # the first turn's other two frames were skipped
    played = turns.play(*frame(3 * FRAME_S))
    assert played.ended == (TurnEnd(pytest.approx(FRAME_S, abs=1e-5), True),)
    assert played.started and len(played.speech) == SPF


def test_an_interrupt_drops_every_turn_and_says_how_far_it_got():
    turns = Turns()
    assert turns.interrupt() is None  # nothing playing
    turns.push(SPF * 10)
    turns.end()
    turns.push(SPF * 10)  # the next turn already queued
    for i in range(4):
        turns.play(*frame(i * FRAME_S))
    assert turns.interrupt() == pytest.approx(4 * FRAME_S)
    assert turns.play(*frame(5 * FRAME_S)).speech is None  # a stale frame plays no turn
    turns.push(SPF)  # after it, the agent's audio goes on the timeline after what was dropped
    turns.end()
    played = turns.play(*frame(20 * FRAME_S))
    assert played.started and played.finished == TurnEnd(pytest.approx(FRAME_S, abs=1e-5), True)
