"""Timings from a client's TTS: every vocabulary read into marks, refusals, files."""

import json
import math

import pytest

from sonic_rt.audio import timings
from sonic_rt.audio.timings import BadTimings, Mark, covered, parse, relative

# Amazon Polly's speech-mark output for "Mom" (OutputFormat json, SpeechMarkTypes viseme and word):
# one JSON object per line, times in ms, visemes with no end (written by hand from Polly's format)
POLLY_LINES = """\
{"time":6,"type":"word","start":0,"end":3,"value":"Mom"}
{"time":6,"type":"viseme","value":"p"}
{"time":86,"type":"viseme","value":"a"}
{"time":226,"type":"viseme","value":"p"}
{"time":311,"type":"viseme","value":"sil"}
"""
# Azure Speech's VisemeReceived events for "boot" (audio offsets in 100 ns ticks), as the Python SDK
# reports them and as the JavaScript SDK names them
AZURE = [
    {"audio_offset": 500_000, "viseme_id": 21},
    {"audio_offset": 1_250_000, "viseme_id": 7},
    {"audioOffset": 3_000_000, "visemeId": 19},
    {"audioOffset": 3_750_000, "visemeId": 0},
]


def test_polly_speech_marks_file(tmp_path):
    path = tmp_path / "mom.marks"
    path.write_text(POLLY_LINES)
    marks = timings.load(path)
    assert [m.classes for m in marks] == [("p",), ("a",), ("p",), ("rest",)]  # the word mark is skipped
    assert [m.start for m in marks] == pytest.approx([0.006, 0.086, 0.226, 0.311])
    assert [m.end for m in marks[:3]] == pytest.approx([0.086, 0.226, 0.311])  # each to the next
    assert math.isinf(marks[-1].end)  # the last stays open until its audio ends


def test_azure_viseme_events():
    marks = parse("azure", AZURE, end=0.45)
    assert [m.classes for m in marks] == [("p",), ("u",), ("t",), ("rest",)]
    assert [m.start for m in marks] == pytest.approx([0.05, 0.125, 0.3, 0.375])
    assert marks[-1].end == pytest.approx(0.45)
    assert parse("azure", [{"audio_offset": 0, "viseme_id": 11}])[0].classes == ("a", "ɪ")  # a diphthong
    assert parse("azure", [{"audio_offset": 0, "viseme_id": 12}])[0].classes == ("h",)  # glottal


def test_ipa_with_stress_length_and_diphthongs():
    marks = parse("ipa", [
        {"phone": "ˈb", "start_ms": 0, "end_ms": 60},
        {"phone": "uː", "start_ms": 60, "end_ms": 200},
        {"phone": "t͡ʃ", "start_ms": 200, "end_ms": 260},
        {"phone": "aɪ", "start_ms": 300, "end_ms": 450},
    ], offset=1.0)  # fmt: skip
    assert [m.classes for m in marks] == [("p",), ("u",), ("ʃ",), ("a", "ɪ")]
    assert (marks[0].start, marks[-1].end) == pytest.approx((1.0, 1.45))


def test_arpabet_and_festival_phones():
    marks = parse("arpabet", [
        {"phone": "M", "start_ms": 0, "end_ms": 50},
        {"phone": "UW1", "start_ms": 50, "end_ms": 150},
        {"phone": "v", "start_ms": 150, "end_ms": 200},  # festival's lower case
        {"phone": "pau", "start_ms": 200, "end_ms": 300},
    ])  # fmt: skip
    assert [m.classes for m in marks] == [("p",), ("u",), ("f",), ("rest",)]


def test_espeak_mnemonics_keep_the_closure_of_a_voiceless_stop():
    marks = parse("espeak", [{"phone": "p", "start_ms": 0, "end_ms": 50}, {"phone": "i:", "start_ms": 50}], end=0.2)
    assert marks[0].closure and not marks[1].closure
    assert marks[1].classes == ("i",)


@pytest.mark.parametrize(
    ("fmt", "marks", "why"),
    [
        ("ipa", [{"phone": "p", "start_ms": 100, "end_ms": 200}, {"phone": "a", "start_ms": 150, "end_ms": 250}],
         "must not overlap"),
        ("ipa", [{"phone": "p", "start_ms": 100, "end_ms": 200}, {"phone": "a", "start_ms": 50, "end_ms": 90}],
         "go backwards"),
        ("ipa", [{"phone": "p", "start_ms": 100, "end_ms": 80}], "before it starts"),
        ("ipa", [{"phone": "☃", "start_ms": 0, "end_ms": 80}], "unknown IPA symbol"),
        ("arpabet", [{"phone": "XX", "start_ms": 0, "end_ms": 80}], "unknown ARPAbet phone"),
        ("espeak", [{"phone": "§", "start_ms": 0, "end_ms": 80}], "unknown espeak phoneme"),
        ("polly", [{"time": 0, "type": "viseme", "value": "Q"}], "unknown Polly viseme"),
        ("polly", [{"time": 10, "type": "viseme", "value": "p"}, {"time": 5, "type": "viseme", "value": "a"}],
         "go backwards"),
        ("azure", [{"audio_offset": 0, "viseme_id": 22}], "integer 0-21"),
        ("azure", [{"audio_offset": -1, "viseme_id": 2}], "a time is a number >= 0"),
        ("ipa", [{"phone": "p", "start_ms": "soon"}], "a time is a number"),
        ("ipa", [{"start_ms": 0}], "has no 'phone'"),
        ("ipa", ["p"], "is not an object"),
        ("klingon", [], "unknown timings format"),
    ],
)  # fmt: skip
def test_refusals_say_why(fmt, marks, why):
    with pytest.raises(BadTimings, match=why) as err:
        parse(fmt, marks)
    assert err.value.code == "bad_timings"


def test_files_in_the_message_form_and_bad_files(tmp_path):
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"format": "azure", "marks": AZURE, "offset_ms": 1000}))
    assert timings.load(good)[0].start == pytest.approx(1.05)
    for text, why in (("not json at all {", "not JSON"), ('{"marks": []}', '"format" and "marks"')):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(BadTimings, match=why):
            timings.load(bad)


def test_coverage_of_a_stretch_of_audio():
    marks = (Mark(("p",), 1.0, 1.1), Mark(("a",), 1.2, 1.4))
    assert covered(marks, 0.9, 1.5) == [(0.9, 1.0, False), (1.0, 1.4, True), (1.4, 1.5, False)]
    assert covered(marks, 1.05, 1.3) == [(1.05, 1.3, True)]  # the pause between marks is theirs
    assert covered((), 0.0, 1.0) == [(0.0, 1.0, False)]
    assert [m.start for m in relative(marks, 1.05, 1.3)] == pytest.approx([-0.05, 0.15])
