"""The invisible watermark against invisible-watermark's dwtDctSvd, on the same frames in the same run.

Clips: 2 s (50 frames, 512 px) of talking portraits — scikit-image's astronaut and the shared
data's portraits when present — rendered without marks, then marked by each method with a
32-bit payload. Figures per method:
  - embedding cost per 512 px frame (one core) and PSNR against the unmarked frame;
  - payload recovery from each 2 s clip through the server's own encoders (WebSocket JPEG and
    H.264, WebRTC VP8 at aiortc's 500 kbps start and its 250 kbps floor, the session recording,
    the offline MP4) and H.264 MP4 at 500 kbps and 1 Mbps; dwtDctSvd is read by a majority vote
    of its per-frame bits (it has no way to combine frames otherwise);
  - false positives on unmarked video (our renders and the shared data's real talking videos):
    the detector run with many independent keys, counting how often the check bits match; the
    rate of matching the first k check bits is shown against 2^-k to check the model the bound
    rests on (2^-24 for all 24).

    pip install --no-deps invisible-watermark PyWavelets   # the reference (it would pull opencv-python)
    python bench/bench_watermark.py [--clips 6] [--trials 3000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib

import cv2
import numpy as np
from common import REPO, SHARED_DATA, pin_one_core

sys.path.insert(0, str(REPO))

from sonic_rt.provenance import watermark as wm  # noqa: E402
from tests import transcode  # noqa: E402

FRAMES = 50  # 2 s at 25 fps


def _codecs() -> dict:
    return {
        "WebSocket JPEG q80": transcode.jpeg,
        "WebSocket H.264 (1 Mbps ultrafast)": transcode.h264_stream,
        "WebRTC VP8 500 kbps": lambda f: transcode.vp8_webrtc(f, 500_000),
        "WebRTC VP8 250 kbps (floor)": lambda f: transcode.vp8_webrtc(f, 250_000),
        "recording (CRF 23 ultrafast)": lambda f: transcode.mp4(f, crf=23, preset="ultrafast")[0],
        "offline MP4 (CRF 20 veryfast)": lambda f: transcode.mp4(f, crf=20, preset="veryfast")[0],
        "H.264 MP4 500 kbps": lambda f: transcode.mp4(f, bitrate=500_000)[0],
        "H.264 MP4 1 Mbps": lambda f: transcode.mp4(f, bitrate=1_000_000)[0],
    }


def render_clips(count: int) -> list[tuple[str, list[np.ndarray]]]:
    """``count`` clips of 2 s of speech, unmarked: astronaut first, then shared-data portraits."""
    from skimage import data

    from sonic_rt.animator import Animator
    from sonic_rt.audio import tts
    from sonic_rt.config import GeometryParams, MotionParams
    from sonic_rt.errors import SonicError
    from sonic_rt.face.analysis import FaceAnalyzer
    from sonic_rt.face.image_io import load_image
    from sonic_rt.motion.stream import load_model
    from sonic_rt.render.identity import enroll
    from sonic_rt.render.renderer import Renderer

    sources = [("astronaut", data.astronaut())]
    sources += [(p.stem, p) for p in sorted((SHARED_DATA / "images").glob("*"))] if SHARED_DATA.is_dir() else []
    speech = tts.synthesize("Good evening, and welcome. Here is the news of the day, read to you.", "en-us").audio
    model, idle, analyzer = *load_model(), FaceAnalyzer()
    clips = []
    for name, source in sources:
        if len(clips) == count:
            break
        try:
            identity = enroll(source if isinstance(source, np.ndarray) else load_image(source), GeometryParams(),
                              analyzer)  # fmt: skip
        except SonicError as err:
            print(f"  skip {name}: {err}")
            continue
        animator = Animator(identity, model, idle, MotionParams(block_frames=2), render=False)
        motion = [f.motion for f in animator.push(speech) + animator.finish()][:FRAMES]
        renderer = Renderer(identity)
        clips.append((name, [renderer.render(vec) for vec in motion]))
    return clips


class Ours:
    name = "sonic-rt (informed spread spectrum, 56 bits)"

    def embed(self, frames, payload):
        marker = wm.Watermarker(payload)
        return [marker.embed(f) for f in frames]

    def read(self, frames, payload) -> bool:
        return wm.detect(frames).payload == payload


class DwtDctSvd:
    name = "invisible-watermark dwtDctSvd (32 bits)"

    def __init__(self) -> None:
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self._encoder, self._decoder = WatermarkEncoder(), WatermarkDecoder("bits", 32)

    @staticmethod
    def _bits(payload: int) -> list[int]:
        return [(payload >> (31 - i)) & 1 for i in range(32)]

    def embed(self, frames, payload):
        self._encoder.set_watermark("bits", self._bits(payload))
        return [cv2.cvtColor(self._encoder.encode(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), "dwtDctSvd"), cv2.COLOR_BGR2RGB)
                for f in frames]  # fmt: skip

    def read(self, frames, payload) -> bool:
        votes = np.mean([self._decoder.decode(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), "dwtDctSvd") for f in frames], 0)
        return [int(v > 0.5) for v in votes] == self._bits(payload)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def measure(method, clips, rng) -> dict:
    embed_ms, psnrs, recovered = [], [], {name: 0 for name in _codecs()}
    for _, frames in clips:
        payload = int(rng.integers(0, 2**32))
        t0 = time.perf_counter()
        marked = method.embed(frames, payload)
        embed_ms.append((time.perf_counter() - t0) * 1e3 / len(frames))
        psnrs += [psnr(a, b) for a, b in zip(frames, marked, strict=True)]
        assert method.read(marked, payload), f"{method.name}: not read back before any encoder"
        for name, codec in _codecs().items():
            recovered[name] += method.read(codec(marked), payload)
    return {"embed_ms": statistics.median(embed_ms), "psnr": statistics.mean(psnrs),
            "psnr_min": min(psnrs), "recovered": recovered}  # fmt: skip


def unmarked_videos(clips) -> list[tuple[str, np.ndarray]]:
    """Summed residuals of 2 s of unmarked video: our renders and the shared data's real videos."""
    out = [(f"render {name}", sum(wm.residual(f) for f in frames)) for name, frames in clips]
    import av

    for path in sorted((SHARED_DATA / "videos").glob("*.mp4")) if SHARED_DATA.is_dir() else []:
        with av.open(str(path)) as container:
            decoded = (f.to_ndarray(format="rgb24") for f in container.decode(video=0))
            frames = [frame for _, frame in zip(range(FRAMES), decoded, strict=False)]
        out.append((f"video {path.stem}", sum(wm.residual(f) for f in frames)))
    return out


def false_positives(residuals, trials: int, rng, batch: int = 2000) -> tuple[int, dict[int, int]]:
    """Runs of the detector with independent random keys on unmarked video: how often all check
    bits match, and how often the first k do (to check the 2^-k model)."""
    per_video = -(-trials // len(residuals))
    owner = wm.LAYOUT.owner.ravel()
    order = np.argsort(owner, kind="stable")[np.sort(owner) >= 0]  # each bit's cells, contiguous
    partial = {8: 0, 12: 0, 16: 0}
    full = 0
    weights = 2 ** np.arange(wm.BITS - 1, -1, -1, dtype=np.uint64)
    for _, summed in residuals:
        cells = summed.ravel()[order].astype(np.float32)
        done = 0
        while done < per_video:
            n = min(batch, per_video - done)
            chips = rng.integers(0, 2, (n, cells.size), dtype=np.int8) * 2 - 1
            values = (chips * cells).reshape(n, wm.BITS, wm.CELLS_PER_BIT).sum(-1)
            words = (values > 0).astype(np.uint64) @ weights
            payloads, checks = words >> np.uint64(wm.CHECK_BITS), words & np.uint64(2**wm.CHECK_BITS - 1)
            expected = np.array([zlib.crc32(int(p).to_bytes(4, "big")) for p in payloads], np.uint64) & np.uint64(
                2**wm.CHECK_BITS - 1
            )
            for k in partial:
                shift = np.uint64(wm.CHECK_BITS - k)
                partial[k] += int(np.sum((checks >> shift) == (expected >> shift)))
            full += int(np.sum(checks == expected))
            done += n
    return full, partial, per_video * len(residuals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6, help="2 s clips (portraits) to measure on")
    parser.add_argument("--trials", type=int, default=3_000_000, help="detector runs on unmarked video")
    args = parser.parse_args()
    core = pin_one_core()
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    clips = render_clips(args.clips)
    print(f"{len(clips)} clips of {FRAMES} frames at {clips[0][1][0].shape[0]} px on core {core} "
          f"({', '.join(n for n, _ in clips)}); rendered in {time.perf_counter() - t0:.0f} s\n")  # fmt: skip
    methods = [Ours()]
    try:
        methods.append(DwtDctSvd())
    except ImportError:
        print("note: invisible-watermark is not installed; the reference column is missing "
              "(pip install --no-deps invisible-watermark PyWavelets)\n")  # fmt: skip
    results = {m.name: measure(m, clips, np.random.default_rng(11)) for m in methods}
    names = list(results)
    width = 36
    print(f"{'':{width}}" + "".join(f"{n[:44]:>46}" for n in names))
    print(f"{'embed ms per frame (one core)':{width}}" + "".join(f"{r['embed_ms']:>46.2f}" for r in results.values()))
    print(f"{'PSNR dB mean (min)':{width}}"
          + "".join(f"{r['psnr']:>39.2f} ({r['psnr_min']:.1f})" for r in results.values()))  # fmt: skip
    print("payload recovered from 2 s clips:")
    for codec in _codecs():
        counts = (f"{r['recovered'][codec]:>40d} / {len(clips)}" for r in results.values())
        print(f"  {codec:{width - 2}}" + "".join(counts))
    if len(names) == 2:
        a, b = results.values()
        print(f"\nembedding cost ratio, ours / dwtDctSvd: {a['embed_ms'] / b['embed_ms']:.3f}")

    print("\nfalse positives on unmarked video (ours; dwtDctSvd has no check bits: it reads some payload "
          "from any video, so it cannot say 'no watermark')")  # fmt: skip
    residuals = unmarked_videos(clips)
    found = sum(wm.decode_bits(wm.LAYOUT.correlate(r)) is not None for _, r in residuals)
    print(f"  the detector itself (the one key) on {len(residuals)} unmarked videos: {found} detections")
    t0 = time.perf_counter()
    full, partial, trials = false_positives(residuals, args.trials, rng)
    print(f"  {trials} detector runs with independent keys over {len(residuals)} unmarked videos "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    for k, hits in partial.items():
        print(f"  first {k:2d} check bits match: {hits / trials:.3e}   (model 2^-{k} = {2.0**-k:.3e}, "
              f"ratio {hits / trials / 2.0**-k:.2f})")  # fmt: skip
    bound = (3.0 if full == 0 else full * 1.0 + 3 * full**0.5) / trials
    print(f"  all 24 match (a false detection): {full} in {trials}  -> rate {full / trials:.1e}, "
          f"95% upper bound {bound:.1e}; model 2^-24 = {2.0**-24:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
