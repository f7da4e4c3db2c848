import numpy as np
import pytest

from sonic_rt.provenance.label import Label


@pytest.mark.parametrize("size", [128, 512, 1024])
def test_the_label_sits_in_the_lower_left_corner_and_nowhere_else(size):
    frame = np.full((size, size, 3), 200, np.uint8)
    label = Label(size)
    out = label.apply(frame.copy())
    rows, cols = label.box
    assert rows.stop <= size and rows.start > size // 2 and cols.start < size // 8
    changed = np.abs(out.astype(int) - frame).sum(axis=2) > 0
    assert changed[label.box].mean() > 0.9  # the dark box
    changed[label.box] = False
    assert not changed.any()
    box = out[label.box]
    assert box.max() >= 200 and box.min() < 100  # white text on a dark box: legible


def test_the_label_is_drawn_in_place():
    frame = np.zeros((256, 256, 3), np.uint8)
    assert Label(256).apply(frame) is frame and frame.max() > 0
