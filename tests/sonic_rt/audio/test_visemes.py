"""OVR viseme weights from the phonetic track."""

import numpy as np
import pytest

from sonic_rt.audio import phoneset, visemes
from sonic_rt.audio.phonetic import encode
from sonic_rt.audio.visemes import NAMES, VisemeTrack, classes_of

C = phoneset.CLASS_INDEX


def test_fifteen_ovr_visemes_and_every_class_has_one():
    assert NAMES == ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
    assert len(visemes.TABLE) == len(phoneset.CLASSES)


def test_weights_sum_to_one_and_follow_the_rows():
    track = VisemeTrack()
    rows = [C["p"]] * 4 + [C["p"], C["p"], C["a"], C["a"]] + [C["u"]] * 4
    track.push(np.array(rows))
    w = track.frames(4)  # the last frame has no rows yet: silence
    assert w.sum(axis=1) == pytest.approx(np.ones(4))
    assert w[0, NAMES.index("PP")] == 1.0
    assert w[1, NAMES.index("PP")] == 0.5 and w[1, NAMES.index("aa")] == 0.5
    assert w[2, NAMES.index("ou")] == 1.0
    assert w[3, NAMES.index("sil")] == 1.0


def test_a_glottal_row_continues_the_viseme_before_it_and_reset_forgets():
    track = VisemeTrack()
    track.push(np.array([C["ɑ"]] * 3))
    track.push(np.array([C["h"]] * 5))  # across pushes too
    w = track.frames(2)
    assert w[0, NAMES.index("aa")] == 1.0 and w[1, NAMES.index("aa")] == 1.0
    track.reset()
    assert track.frames(1)[0, NAMES.index("sil")] == 1.0


def test_classes_read_back_from_phonetic_features():
    classes = np.array([C["f"], C["rest"], C["o"]])
    assert (classes_of(encode(classes, np.array([1.0, 1.0, 0.4]))) == classes).all()
    assert visemes.as_dict(visemes.REST)["sil"] == 1.0
