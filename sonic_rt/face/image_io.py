"""Decode a portrait file into an upright RGB array, refusing what cannot be used safely.

Accepts JPEG, PNG and WebP; honours EXIF orientation; flattens transparency onto white;
converts greyscale, palette, 16-bit and CMYK images; refuses decompression bombs by reading the
pixel count from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageTooLarge, UnreadableImage

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 40_000_000  # 40 MP: larger than any camera portrait, far below a bomb
MAX_FILE_BYTES = 50 * 1024 * 1024
BACKGROUND_RGB = (255, 255, 255)


def load_image(source: str | Path | bytes) -> np.ndarray:
    """Return the image as an ``(H, W, 3)`` uint8 RGB array, upright.

    Raises ``UnreadableImage`` (missing, empty, corrupt or unsupported file) or
    ``ImageTooLarge`` (too many pixels or bytes).
    """
    data = _read_bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ACCEPTED_FORMATS:
                raise UnreadableImage(f"unsupported image format {img.format}; use JPEG, PNG or WebP")
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(
                    f"image is {width}x{height} = {width * height / 1e6:.0f} MP; at most {MAX_PIXELS / 1e6:.0f} MP"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageTooLarge(f"image refused as a decompression bomb: {err}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"cannot decode image: {err}") from err


def _read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise UnreadableImage(f"no such file: {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageTooLarge(f"file is {path.stat().st_size / 2**20:.0f} MiB; at most {MAX_FILE_BYTES >> 20} MiB")
        data = path.read_bytes()
    if not data:
        raise UnreadableImage("image file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLarge(f"image is {len(data) / 2**20:.0f} MiB; at most {MAX_FILE_BYTES >> 20} MiB")
    return data


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND_RGB)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(flat, dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
