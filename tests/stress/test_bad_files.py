"""Every kind of bad file, to the REST API and to the command line: nothing, every 10 % prefix of a
real PNG, JPEG, WebP, WAV, MP3, Ogg/Opus and FLAC, the wrong kind of file under the right name,
random bytes, headers declaring 100000 x 100000 pixels or 4 GB of samples, a 36-megapixel PNG of
11 KB, a 60 MB upload, audio that is silent, has NaN in it or no sound track at all. Each must get
its documented error code (a 4xx with ``{"error": {"code", "message"}}``, or ``error [CODE]`` and
exit status 2), never a 500 or a crash; what is in fact usable (a WAV or MP3 cut short plays as far
as it goes, a PNG named ``.wav`` is a PNG) is used."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import main
from tests.conftest import png_bytes
from tests.stress.streams import tallied

OK = "ok"  # the file is usable: the request succeeds
USAGE = "usage"  # the command line's own check refuses it (exit 2, "Error: Invalid value ...")
UPLOAD_LIMIT = 50 * 2**20


# -- the files ------------------------------------------------------------------------------------


def encoded(fmt: str, codec: str, rate: int, seconds: float = 1.0) -> bytes:
    """A tone encoded with PyAV: ``fmt`` container, ``codec`` codec."""
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(round(rate * seconds)) / rate)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=rate,
                                      frame_size=ctx.frame_size or None)  # the encoder's frame size
        frame = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
        frame.sample_rate = rate
        for piece in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return buf.getvalue()


def wav(samples: np.ndarray, rate: int = 16000, *, float32: bool = False, declared: int | None = None) -> bytes:
    """A mono WAV of ``samples`` (float in [-1, 1]); ``declared``: the data size its header claims."""
    data = np.asarray(samples, "<f4").tobytes() if float32 else np.round(np.clip(samples, -1, 1) * 32767).astype(
        "<i2").tobytes()  # fmt: skip
    width, kind = (4, 3) if float32 else (2, 1)
    size = len(data) if declared is None else declared
    fmt = struct.pack("<IHHIIHH", 16, kind, 1, rate, rate * width, width, 8 * width)
    return b"RIFF" + struct.pack("<I", min(36 + size, 2**32 - 1)) + b"WAVEfmt " + fmt + b"data" + struct.pack(
        "<I", size) + data  # fmt: skip


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with a few bytes of image data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def blank_png(side: int, mode: str = "1") -> bytes:
    """A ``side`` x ``side`` white PNG: a few KB that decode to ``side``² pixels (a zip bomb's shape)."""
    buf = io.BytesIO()
    Image.new(mode, (side, side), 255).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def silent_video() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    return buf.getvalue()


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def files(astronaut) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    speech = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    gif = io.BytesIO()
    Image.fromarray(astronaut).save(gif, "GIF")
    return {
        "png": png_bytes(astronaut), "jpeg": png_bytes(astronaut, "JPEG", quality=90),
        "webp": png_bytes(astronaut, "WEBP"), "gif": gif.getvalue(),
        "noise image": png_bytes(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)),
        "wav": wav(speech), "mp3": encoded("mp3", "libmp3lame", 44100), "ogg": encoded("ogg", "libopus", 48000),
        "flac": encoded("flac", "flac", 44100), "random": rng.bytes(20_000), "pdf": PDF,
        "video without sound": silent_video(),
    }  # fmt: skip


def prefixes(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """Every 10 % prefix of ``data``: 10 % ... 90 % (0 % is the empty file, a case of its own)."""
    return [(f"{name} cut at {k}0 %", data[: len(data) * k // 10]) for k in range(1, 10)]


def image_cases(files: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """``(case, file name, content, expected code or OK)`` for a portrait."""
    cases = [("zero bytes", "face.png", b"", "unreadable_image")]
    for kind, suffix in (("png", "png"), ("jpeg", "jpg"), ("webp", "webp")):
        cases += [(case, f"face.{suffix}", data, "unreadable_image") for case, data in prefixes(kind, files[kind])]
    return cases + [
        ("a WAV named .jpg", "face.jpg", files["wav"], "unreadable_image"),
        ("an MP3 named .png", "face.png", files["mp3"], "unreadable_image"),
        ("a PDF named .png", "face.png", files["pdf"], "unreadable_image"),
        ("random bytes named .jpg", "face.jpg", files["random"], "unreadable_image"),
        ("a GIF", "face.gif", files["gif"], "unreadable_image"),
        ("a PNG named .wav", "face.wav", files["png"], OK),
        ("a header declaring 100000 x 100000", "face.png", png_declaring(100_000, 100_000), "image_too_large"),
        ("49 MP of white in 62 KB", "face.png", blank_png(7000, "L"), "image_too_large"),
        ("36 MP of white in 11 KB", "face.png", blank_png(6000), "no_face"),
        ("noise: no face", "face.png", files["noise image"], "no_face"),
    ]  # fmt: skip


def audio_cases(files: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """``(case, file name, content, expected code or OK)`` for the audio of a render."""
    cases = [("zero bytes", "speech.wav", b"", "unreadable_audio")]
    cases += [(case, "speech.wav", data, OK) for case, data in prefixes("wav", files["wav"])]
    cases += [(case, "speech.mp3", data, OK) for case, data in prefixes("mp3", files["mp3"])]
    cases += [(case, "speech.ogg", data, "unreadable_audio") for case, data in prefixes("ogg", files["ogg"])]
    cases += [(case, "speech.flac", data, "unreadable_audio") for case, data in prefixes("flac", files["flac"])]
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    return cases + [
        ("a PNG named .wav", "speech.wav", files["png"], "no_audio_stream"),
        ("a JPEG named .mp3", "speech.mp3", files["jpeg"], "no_audio_stream"),
        ("a WAV named .jpg", "speech.jpg", files["wav"], OK),
        ("a PDF named .mp3", "speech.mp3", files["pdf"], "unreadable_audio"),
        ("random bytes named .wav", "speech.wav", files["random"], "unreadable_audio"),
        ("a video with no sound", "speech.mp4", files["video without sound"], "no_audio_stream"),
        ("a WAV header with no samples", "speech.wav", wav(np.zeros(0)), "empty_audio"),
        ("digital silence", "speech.wav", wav(np.zeros(16000)), "silent_audio"),
        ("float samples with a NaN", "speech.wav", wav(np.where(np.arange(16000) == 8000, np.nan, tone),
                                                       float32=True), "unreadable_audio"),
        ("a header declaring 4 GB, holding 1 s", "speech.wav", wav(tone, declared=2**32 - 64), OK),
    ]  # fmt: skip


# -- REST -----------------------------------------------------------------------------------------


def answer_problems(case: str, r: httpx.Response, expected: str) -> list[str]:
    """The response is the expected success, or a 4xx with the expected error code."""
    if expected == OK:
        return [] if r.status_code == 200 else [f"{case}: {r.status_code} {r.text[:200]}"]
    if r.status_code >= 500 or r.status_code < 400:
        return [f"{case}: status {r.status_code} {r.text[:200]}"]
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return [f"{case}: {r.status_code} without an error code: {r.text[:200]}"]
    return [] if code == expected else [f"{case}: {code} instead of {expected}"]


@pytest.fixture(scope="module")
def sixty_megabytes(tmp_path_factory) -> Path:
    """A 60 MB file that takes no memory and (sparse) no disk; uploads stream it from disk."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with open(path, "wb") as out:
        out.truncate(60 * 10**6)
    assert path.stat().st_size > UPLOAD_LIMIT
    return path


def test_bad_images_to_the_portrait_api_get_their_codes(stress_server, files, sixty_megabytes):
    with tallied("files: images") as cases, httpx.Client(base_url=stress_server.http, timeout=120) as http:
        for case, name, data, expected in image_cases(files):
            r = http.post("/v1/portraits", files={"image": (name, data)}, data={"consent": "true"})
            cases.check(answer_problems(case, r, expected))
        with open(sixty_megabytes, "rb") as big:
            r = http.post("/v1/portraits", files={"image": ("face.png", big)}, data={"consent": "true"})
        cases.check(answer_problems("a 60 MB upload", r, "bad_params"))
        cases.check([] if http.get("/healthz").status_code == 200 else ["the server stopped answering"])


def test_bad_audio_to_the_render_api_gets_its_codes(stress_server, files, portrait, sixty_megabytes):
    with tallied("files: audio") as cases, httpx.Client(base_url=stress_server.http, timeout=120) as http:
        for case, name, data, expected in audio_cases(files):
            r = http.post("/v1/renders", files={"audio": (name, data)}, data={"portrait": portrait})
            problems = answer_problems(case, r, expected)
            if expected == OK and not problems:
                seconds = float(r.headers["X-Seconds"])
                share = int(case.split(" cut at ")[1][0]) / 10 if " cut at " in case else 1.0
                longest = share + 0.1  # the files hold 1 s
                if not 0 < seconds <= longest or r.content[4:8] != b"ftyp":
                    problems.append(f"{case}: a {seconds} s video (at most {longest:.2f} s of audio was sent)")
            cases.check(problems)
        one_hertz = wav(np.sin(np.arange(2000) / 3), rate=1)  # 2000 s of audio in 4 KB
        r = http.post("/v1/renders", files={"audio": ("slow.wav", one_hertz)},
                      data={"portrait": portrait, "params": '{"duration": 1.0, "trim": true}'})  # fmt: skip
        problems = answer_problems("2000 s at 1 Hz, trimmed to 1 s", r, OK)
        cases.check(problems or ([] if r.headers["X-Seconds"] == "1.000" else [f"1 Hz: {r.headers['X-Seconds']} s"]))
        with open(sixty_megabytes, "rb") as big:
            r = http.post("/v1/renders", files={"audio": ("speech.wav", big)}, data={"portrait": portrait})
        cases.check(answer_problems("a 60 MB upload", r, "bad_params"))
        cases.check([] if http.get("/healthz").json()["sessions"] == 0 else ["a render kept its place"])


# -- the command line -----------------------------------------------------------------------------


def cli_problems(case: str, args: list[str], expected: str, output: Path | None = None) -> list[str]:
    result = CliRunner().invoke(main, args)
    problems = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"{case}: crashed with {result.exception!r}")
    elif result.exit_code != 2 or (f"error [{expected}]" if expected != USAGE else "Error: Invalid value") \
            not in result.output:
        problems.append(f"{case}: exit {result.exit_code}, {result.output.strip()[-200:]!r} (expected {expected})")
    if output is not None and output.exists():
        problems.append(f"{case}: left {output.name} behind")
    return problems


def test_bad_files_to_the_command_line_get_their_codes(files, tmp_path):
    """``sonic-rt enroll`` with bad images, ``sonic-rt generate`` with bad audio or a bad portrait:
    ``error [CODE]``, exit status 2, no output file."""

    def put(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def chosen(case: str, code: str) -> bool:  # the bad ones, and of the prefixes only the halves
        return code != OK and ("cut at" not in case or case.endswith("50 %"))

    images = [(case, put(f"image{i}-{name}", data), code)
              for i, (case, name, data, code) in enumerate(image_cases(files)) if chosen(case, code)]  # fmt: skip
    images += [("a missing file", tmp_path / "missing.png", "unreadable_image"),
               ("a folder", tmp_path, "unreadable_image")]  # fmt: skip
    sounds = [(case, put(f"audio{i}-{name}", data), code)
              for i, (case, name, data, code) in enumerate(audio_cases(files)) if chosen(case, code)]  # fmt: skip
    sounds += [("a missing file", tmp_path / "missing.wav", "unreadable_audio"),
               ("a folder", tmp_path, USAGE)]  # click refuses it before the command runs  # fmt: skip
    portraits = [c for c in images if c[0] in ("zero bytes", "png cut at 50 %", "jpeg cut at 50 %", "a missing file",
                                               "random bytes named .jpg", "a header declaring 100000 x 100000",
                                               "36 MP of white in 11 KB", "noise: no face")]  # fmt: skip
    good_sound = put("good.wav", files["wav"])
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    db = ["--audit-db", str(tmp_path / "audit.db")]
    with tallied("files: CLI") as cases:
        for case, path, code in images:
            cases.check(cli_problems(f"enroll: {case}", ["enroll", str(path)], code))
        for case, path, code in portraits:
            args = ["generate", str(path), str(good_sound), "-o", str(out), "--consent", *db]
            cases.check(cli_problems(f"generate, portrait: {case}", args, code, out))
        for case, path, code in sounds:
            args = ["generate", "sample:astronaut", str(path), "-o", str(out), *db]
            cases.check(cli_problems(f"generate, audio: {case}", args, code, out))
