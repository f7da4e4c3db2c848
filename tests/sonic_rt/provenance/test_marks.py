import numpy as np

from sonic_rt.provenance.label import Label
from sonic_rt.provenance.marks import Marker, Marks
from sonic_rt.provenance.watermark import detect


def test_marks_draw_a_fresh_payload_unless_given():
    assert len({Marks().watermark for _ in range(4)}) > 1
    assert Marks(7).watermark == 7 and not Marks(7).label


def test_the_marker_labels_then_watermarks(astronaut_identity):
    from sonic_rt.animator import rest_image

    frame = rest_image(astronaut_identity)
    size = frame.shape[0]
    out = Marker(Marks(0x1234, label=True), size).apply(frame.copy())
    assert detect([out]).payload == 0x1234
    label = Label(size)
    assert np.abs(out[label.box].astype(int) - frame[label.box]).mean() > 20
    plain = Marker(Marks(0x1234), size).apply(frame.copy())
    assert np.abs(plain[label.box].astype(int) - frame[label.box]).mean() < 8  # the watermark alone
