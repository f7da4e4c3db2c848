import numpy as np
import pytest

from sonic_rt.animator import Animator
from sonic_rt.config import MotionParams
from sonic_rt.errors import UnreadableVideo
from sonic_rt.provenance import watermark as wm
from sonic_rt.render.renderer import Renderer
from tests import transcode

PAYLOAD = 0xC0FFEE42


@pytest.fixture(scope="module")
def clean(astronaut_identity, shipped, sentence):
    """2 s of the astronaut speaking (50 frames at 25 fps), rendered without marks."""
    animator = Animator(astronaut_identity, *shipped, MotionParams(block_frames=2), render=False)
    motion = [f.motion for f in animator.push(sentence) + animator.finish()][:50]
    renderer = Renderer(astronaut_identity)
    return [renderer.render(vec) for vec in motion]


@pytest.fixture(scope="module")
def marked(clean):
    marker = wm.Watermarker(PAYLOAD)
    return [marker.embed(frame) for frame in clean]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_the_code_word_carries_the_payload_and_its_check():
    signs = wm.code_bits(PAYLOAD)
    assert signs.shape == (wm.BITS,) and set(np.unique(signs)) == {-1.0, 1.0}
    assert wm.decode_bits(signs) == PAYLOAD
    assert wm.decode_bits(wm.code_bits(0)) == 0 and wm.decode_bits(wm.code_bits(2**32 - 1)) == 2**32 - 1
    with pytest.raises(ValueError, match="32-bit"):
        wm.code_bits(2**32)


def test_every_single_bit_error_is_detected():
    signs = wm.code_bits(PAYLOAD)
    for i in range(wm.BITS):
        flipped = signs.copy()
        flipped[i] *= -1
        assert wm.decode_bits(flipped) is None, i


def test_the_layout_is_fixed_by_the_key_and_balanced():
    a, b = wm.layout(), wm.layout()
    assert np.array_equal(a.owner, b.owner) and np.array_equal(a.chips, b.chips)
    counts = np.bincount(a.owner[a.owner >= 0], minlength=wm.BITS)
    assert (counts == wm.CELLS_PER_BIT).all()
    assert not np.array_equal(wm.layout(b"another key").owner, a.owner)


def test_marking_is_invisible_by_psnr_and_read_back_from_one_frame(clean, marked):
    values = [psnr(c, m) for c, m in zip(clean, marked, strict=True)]
    assert min(values) >= 39.0 and np.mean(values) >= 40.0
    assert wm.detect(marked[:1]).payload == PAYLOAD
    assert wm.detect(marked).payload == PAYLOAD


def test_unmarked_video_reads_no_payload(clean):
    result = wm.detect(clean)
    assert result.payload is None and not result.found
    assert result.strength < 2  # noise: the median |z| of random signs is about 0.67
    assert wm.detect([]).payload is None


@pytest.mark.parametrize(
    "codec",
    [
        pytest.param(transcode.jpeg, id="websocket-jpeg"),
        pytest.param(transcode.h264_stream, id="websocket-h264"),
        pytest.param(transcode.vp8_webrtc, id="webrtc-vp8-500k"),
        pytest.param(lambda frames: transcode.mp4(frames, bitrate=500_000)[0], id="mp4-h264-500k"),
        pytest.param(lambda frames: transcode.mp4(frames, bitrate=1_000_000)[0], id="mp4-h264-1M"),
    ],
)
def test_the_payload_survives_two_seconds_through_real_encoders(marked, codec):
    decoded = codec(marked)
    assert len(decoded) >= 45
    result = wm.detect(decoded)
    assert result.payload == PAYLOAD, f"{result.bit_errors_if(PAYLOAD)} bits wrong"


def test_a_resized_copy_still_reads(marked):
    import cv2

    small = [cv2.resize(f, (384, 384), interpolation=cv2.INTER_AREA) for f in marked]
    assert wm.detect(small).payload == PAYLOAD


def test_a_marked_frame_keeps_its_size_and_type(clean):
    frame = clean[0]
    out = wm.Watermarker(1).embed(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    assert np.abs(out.astype(int) - frame).max() <= 12


def test_detect_video_reads_a_file_and_refuses_what_is_not_one(marked, tmp_path):
    from sonic_rt.media.mp4 import Mp4Writer

    path = tmp_path / "marked.mp4"
    with Mp4Writer(path, marked[0].shape[0], 25, crf=23) as writer:
        for frame in marked:
            writer.write_frame(frame)
    result = wm.detect_video(path)
    assert result.payload == PAYLOAD and result.frames == len(marked)
    assert wm.detect_video(path, max_seconds=1.0).frames == 25
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(UnreadableVideo):
        wm.detect_video(bad)
