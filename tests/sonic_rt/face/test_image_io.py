import io

import numpy as np
import pytest
from PIL import Image

from sonic_rt.errors import ImageTooLarge, UnreadableImage
from sonic_rt.face.image_io import load_image
from tests.conftest import png_bytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepts_common_formats(astronaut, fmt):
    out = load_image(png_bytes(astronaut, fmt, quality=95) if fmt != "PNG" else png_bytes(astronaut))
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - astronaut).mean() < 6


def test_reads_from_path(tmp_path, astronaut):
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes(astronaut))
    assert np.array_equal(load_image(path), astronaut)


def test_honours_exif_orientation(astronaut):
    img = Image.fromarray(astronaut[:, :300])
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue())
    assert out.shape == (300, 512, 3)


def test_flattens_transparency_onto_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :] = (255, 0, 0, 255)
    out = load_image(png_bytes(rgba))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[7, 7].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16", "P"])
def test_converts_other_modes(astronaut, mode):
    img = Image.fromarray(astronaut)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    else:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if mode == "CMYK" else "PNG")
    out = load_image(buf.getvalue())
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    assert 40 < out.mean() < 220


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "cannot decode"),
        (b"GIF89a" + b"\0" * 32, "cannot decode|unsupported"),
    ],
)
def test_unreadable_inputs(data, match):
    with pytest.raises(UnreadableImage, match=match):
        load_image(data)


def test_truncated_file(astronaut):
    data = png_bytes(astronaut, "JPEG")
    with pytest.raises(UnreadableImage):
        load_image(data[: len(data) // 3])


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImage, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_unsupported_format(astronaut):
    with pytest.raises(UnreadableImage, match="unsupported image format BMP"):
        load_image(png_bytes(astronaut, "BMP"))


@pytest.mark.parametrize(("size", "match"), [((8_000, 6_250), "50 MP; at most 40 MP"), ((12_000, 12_000), "bomb")])
def test_decompression_bomb_refused_before_decoding(size, match):
    bomb = Image.new("1", size)  # tens of megapixels in a few kB of PNG
    buf = io.BytesIO()
    bomb.save(buf, format="PNG")
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(ImageTooLarge, match=match):
        load_image(buf.getvalue())
