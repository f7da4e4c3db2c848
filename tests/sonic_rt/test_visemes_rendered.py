"""Visemes on rendered frames, measured by MediaPipe (``sonic_rt.measure``): the measures on renders of
single motion vectors, and the shipped model's mouth at the known phonemes of an English sentence."""

from __future__ import annotations

import pytest

from sonic_rt.animator import Animator, frames_for_samples, rest_image
from sonic_rt.config import VideoParams
from sonic_rt.measure import (
    OPEN_VOWELS,
    class_spans,
    gap_over_rest,
    lip_to_teeth,
    lips_closed,
    lips_rounded,
    lower_lip_raise,
    mouth_width,
    score_visemes,
    viseme_shares,
)
from sonic_rt.motion import vector
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.renderer import Renderer
from sonic_rt.render.retarget import to_portrait

# Mouth shapes as the phonetic targets (sonic_rt.audio.phoneset.TARGETS) draw them, absolute jaw.
SHAPES = {
    "rest": {},
    "p": {"jaw_open": 0.0},
    "f": {"jaw_open": 0.04, "upper_lip": 0.15, "lower_lip": -0.3},
    "t": {"jaw_open": 0.08},
    "a": {"jaw_open": 0.4, "lip_width": 0.15, "upper_lip": 0.05, "lower_lip": 0.05},
    "i": {"jaw_open": 0.12, "lip_width": 0.5, "upper_lip": 0.05},
    "u": {"jaw_open": 0.1, "lip_width": -0.6, "lip_round": 0.9},
}
TARGET_SENTENCE = "Bob and Mum moved the blue boat."
CONTROL_SENTENCE = "I had a hard day at the castle."  # open vowels away from the lips


@pytest.fixture(scope="module")
def rest_points(astronaut_identity, analyzer):
    points = analyzer.landmarks_only(rest_image(astronaut_identity))
    assert points is not None
    return points


@pytest.fixture(scope="module")
def shapes(astronaut_identity, analyzer):
    renderer = Renderer(astronaut_identity)
    own_gap = astronaut_identity.own_gap / astronaut_identity.iod
    out = {}
    for name, values in SHAPES.items():
        points = analyzer.landmarks_only(renderer.render(to_portrait(vector.make(**values), own_gap)))
        assert points is not None, name
        out[name] = points
    return out


def test_closed_lips_against_an_open_jaw(shapes, rest_points):
    assert gap_over_rest(rest_points, rest_points) == 0.0
    for name in ("rest", "p"):
        assert lips_closed(shapes[name], rest_points), name
    for name in ("t", "a", "i", "u"):
        assert not lips_closed(shapes[name], rest_points), name
    assert gap_over_rest(shapes["a"], rest_points) > 0.08


def test_rounded_against_spread_lips(shapes, rest_points):
    rest_width = mouth_width(rest_points)
    assert mouth_width(shapes["u"]) < 0.8 * rest_width < rest_width < mouth_width(shapes["i"])
    assert lips_rounded(shapes["u"], rest_points)
    for name in ("rest", "p", "f", "a", "i"):
        assert not lips_rounded(shapes[name], rest_points), name


def test_lower_lip_at_the_teeth_against_a_dropped_jaw(shapes, rest_points):
    assert lower_lip_raise(rest_points, rest_points) == 0.0
    assert lower_lip_raise(shapes["f"], rest_points) > -0.02 > lower_lip_raise(shapes["t"], rest_points)
    assert lower_lip_raise(shapes["a"], rest_points) < -0.05
    assert lip_to_teeth(shapes["f"], rest_points)
    for name in ("t", "a", "u"):
        assert not lip_to_teeth(shapes[name], rest_points), name
    # The renderer draws /f/ a pixel or two from a closure: sealed lips count as at the teeth too.
    assert lip_to_teeth(shapes["rest"], rest_points)


def test_score_visemes_finds_the_targets_and_controls(rest_points, shapes):
    from sonic_rt.audio.tts import Phoneme

    fps = 25
    phonemes = [Phoneme("_", 0.0, 0.1), Phoneme("m", 0.1, 0.2), Phoneme("u:", 0.2, 0.4), Phoneme("A:", 0.4, 0.6),
                Phoneme("_", 0.6, 0.8)]  # fmt: skip
    frames = [shapes["rest"]] * 5 + [shapes["u"]] * 5 + [shapes["a"]] * 5 + [shapes["rest"]] * 5
    frames[4] = None  # no face found: that frame is skipped
    occurrences = score_visemes(phonemes, frames, rest_points, fps)
    shares = viseme_shares(occurrences)
    assert shares["closed"]["target"] == (1, 1)  # /m/: frames 1-5 (4 unmeasured), 1-3 closed
    assert shares["rounded"]["target"] == (1, 1)
    assert shares["closed"]["control"] == (0, 0)  # /A:/'s window touches the pause: not a control
    (m,) = [o for o in occurrences if o.viseme == "closed" and not o.control]
    assert m.frames == (1, 2, 3, 5) and m.frame == 1


@pytest.fixture(scope="module")
def spoken(astronaut_identity, shipped, analyzer, rest_points):
    """Per sentence, animated by the shipped model with its phonemes given: its phonemes, the
    landmarks of every frame and the viseme shares."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    model, idle = shipped
    out = {}
    for text in (TARGET_SENTENCE, CONTROL_SENTENCE):
        try:
            speech = tts.synthesize(text, voice="en-us")
        except tts.TTSUnavailable as err:
            pytest.skip(str(err))
        n = frames_for_samples(len(speech.audio), VideoParams().fps)
        # a fixed watermark payload: a random one moves MediaPipe's landmarks, and borderline phones with them
        animator = Animator(astronaut_identity, model, idle, marks=Marks(watermark=0x5EED5EED))
        frames = [*animator.push(speech.audio, script=speech.phonemes), *animator.finish(n)]
        points = [analyzer.landmarks_only(f.image) for f in frames]
        assert sum(p is None for p in points) == 0
        shares = viseme_shares(score_visemes(speech.phonemes, points, rest_points, animator.fps))
        out[text] = (speech.phonemes, points, shares)
    return out


def share(hits_n: tuple[int, int]) -> float:
    hits, n = hits_n
    assert n > 0
    return hits / n


def test_shipped_model_closes_the_lips_at_bilabials(spoken):
    closed = spoken[TARGET_SENTENCE][2]["closed"]["target"]
    assert closed[1] == 6  # b, b, m, m m, b, b
    # The training targets drawn directly close 5 of 6: the /b/ of "blue boat" keeps the rounding of
    # /u/, and the renderer's rounding parts the lips (sonic_rt.render.blendshapes: lip_round opens them).
    assert share(closed) >= 0.5, closed


def test_shipped_model_rounds_the_lips_at_u_and_w(spoken):
    rounded = spoken[TARGET_SENTENCE][2]["rounded"]["target"]
    assert rounded[1] == 2  # the u: of "moved" and of "blue"
    assert share(rounded) >= 0.5, rounded


def test_shipped_model_keeps_open_vowels_open(spoken, rest_points):
    phonemes, points, shares = spoken[CONTROL_SENTENCE]
    fps = VideoParams().fps
    # the frame at the middle of each open vowel of 60 ms or more: open
    middles = [points[int((s.start + s.end) / 2 * fps)] for s in class_spans(phonemes)
               if s.name in OPEN_VOWELS and s.end - s.start >= 0.06]  # fmt: skip
    assert len(middles) >= 5
    closed = sum(lips_closed(p, rest_points) for p in middles)
    assert closed <= 1, (closed, len(middles))
    # the bench's baseline (any frame of the phone's window, as for the targets) stays below the targets
    control = shares["closed"]["control"]
    assert control[1] >= 4
    assert share(control) < share(spoken[TARGET_SENTENCE][2]["closed"]["target"]), control
