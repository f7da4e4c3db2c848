"""Motion tracked from real talking videos: per-frame landmarks -> motion-vector targets.

Only motion is learnt from the videos, never appearance: each frame is reduced to its 478
landmarks and those to the 15 motion channels. Head pose is a rigid 3-D fit of the stable
points (forehead, nose, eye corners, cheeks) to the clip's mean shape; the face channels are
measured in the head's own frame, in inter-ocular distances, relative to the clip's median face
(the speaker's "portrait"), and converted with the renderer's own per-unit displacements so that
a tracked value renders as the motion that was seen.

``jaw_open`` is the one channel kept *absolute*: the lip gap from closed lips
(``ABSOLUTE_JAW``), which is what the motion model predicts and ``sonic_rt.render.retarget`` maps onto
a portrait whose own mouth may be open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from ..audio import FPS, SAMPLES_PER_FRAME
from ..audio.decode import decode_audio
from ..face import landmarks as lm
from ..face.analysis import FaceAnalyzer
from ..measure import eye_aspect_ratio
from ..motion import vector
from ..render.blendshapes import JAW_GAP_IOD

# Renderer displacement per unit of each channel, IOD (measured on the rendered mesh).
WIDTH_PER_UNIT = 0.24  # lip_width +-1 -> corner distance +-0.24
ROUND_NARROWING = 0.40  # lip_round 1 -> corner distance -0.40
SMILE_UP, FROWN_DOWN = 0.09, 0.06  # smile +1 raises corners 0.09, -1 lowers them 0.06
BROW_UP, BROW_DOWN = 0.05, 0.029  # brows +1 raises the brows 0.05, -1 lowers them 0.029

RIGID = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1,  # midline: forehead, nose bridge, nose
    33, 133, 362, 263,  # eye corners
    234, 454, 127, 356, 93, 323, 116, 345, 98, 327,  # cheeks and face sides
)  # fmt: skip

log = logging.getLogger("sonic_rt.train")
MAX_GAP_FRAMES = 5  # missing detections interpolated over at most this many frames


@dataclass(frozen=True)
class TrackedClip:
    """A clip reduced to landmarks on the 25 fps grid, with its audio."""

    name: str
    landmarks: np.ndarray  # (n, 478, 3) px, NaN where no face was found
    audio: np.ndarray  # (samples,) float32, 16 kHz mono; empty when the clip has none

    def save(self, path: Path) -> None:
        np.savez_compressed(path, landmarks=self.landmarks, audio=self.audio, name=np.array(self.name))

    @classmethod
    def load(cls, path: Path) -> TrackedClip:
        with np.load(path) as z:
            return cls(name=str(z["name"]), landmarks=z["landmarks"], audio=z["audio"])


def load_or_track(path: Path, cache_dir: Path, analyzer: Callable[[], FaceAnalyzer]) -> TrackedClip:
    """``track_video`` once per video: the result is kept as ``<cache_dir>/<stem>.track.npz``."""
    cached = cache_dir / f"{path.stem}.track.npz"
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("tracking %s", path.name)
        track_video(path, analyzer()).save(cached)
    return TrackedClip.load(cached)


def track_video(path: Path, analyzer: FaceAnalyzer) -> TrackedClip:
    """Landmarks of every frame, resampled to the 25 fps grid (frame n at n / 25 s)."""
    times, points = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            pts = frame.time if frame.time is not None else len(times) / float(stream.average_rate)
            times.append(pts)
            found = analyzer.landmarks_only(frame.to_ndarray(format="rgb24"))
            points.append(found if found is not None else np.full((lm.N_LANDMARKS, 3), np.nan, np.float32))
    times_arr = np.asarray(times) - times[0]
    src = np.stack(points)
    n_out = int(np.floor(times_arr[-1] * FPS)) + 1
    grid = np.arange(n_out) / FPS
    flat = src.reshape(len(src), -1)
    out = np.empty((n_out, flat.shape[1]), np.float32)
    idx = np.clip(np.searchsorted(times_arr, grid, side="right") - 1, 0, len(times_arr) - 2)
    frac = np.clip((grid - times_arr[idx]) / np.maximum(times_arr[idx + 1] - times_arr[idx], 1e-6), 0, 1)[:, None]
    out[:] = flat[idx] * (1 - frac) + flat[idx + 1] * frac
    try:
        audio = decode_audio(path)
    except Exception:  # noqa: BLE001 - a clip without usable audio is still good for motion statistics
        audio = np.zeros(0, np.float32)
    return TrackedClip(name=path.stem, landmarks=out.reshape(n_out, lm.N_LANDMARKS, 3), audio=audio)


def fill_gaps(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate short NaN runs along axis 0; returns (values, valid mask) — long runs stay invalid."""
    bad = np.isnan(values.reshape(len(values), -1)).any(axis=1)
    valid = ~bad
    if valid.sum() < 2:
        return values, valid
    out = values.copy()
    good = np.flatnonzero(valid)
    flat = out.reshape(len(out), -1)
    for j in range(flat.shape[1]):
        flat[:, j] = np.interp(np.arange(len(out)), good, flat[good, j])
    run = 0
    for i in range(len(bad) + 1):
        if i < len(bad) and bad[i]:
            run += 1
            continue
        if 0 < run <= MAX_GAP_FRAMES and i - run > 0 and i < len(bad):
            valid[i - run : i] = True
        run = 0
    return out, valid


def _kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity transform with ``dst ~ s * R @ src + t`` for (N, 3) point sets."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / (a * a).sum())
    return rot, scale, md - scale * rot @ ms


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees with ``blendshapes.rotation(yaw, pitch, roll) == rot``."""
    roll, pitch, neg_yaw = Rotation.from_matrix(rot).as_euler("ZXY", degrees=True)
    return -float(neg_yaw), float(pitch), float(roll)


def motion_targets(points: np.ndarray) -> np.ndarray:
    """Per-frame motion vectors ``(n, DIM)`` for gap-free landmarks ``(n, 478, 3)``.

    Blinks are tracked too, but the motion model does not learn them (see ``blink_statistics``).
    """
    n = len(points)
    out = np.zeros((n, vector.DIM), np.float32)
    rigid = points[:, list(RIGID)].astype(np.float64)
    ref = rigid.mean(axis=0)
    ref_iod = np.median(np.linalg.norm(points[:, lm.LEFT_IRIS_CENTER] - points[:, lm.RIGHT_IRIS_CENTER], axis=1))
    aligned = np.empty_like(points, dtype=np.float64)
    for i in range(n):
        rot, scale, shift = _kabsch(ref, rigid[i])
        yaw, pitch, roll = euler_from_rotation(rot)
        out[i, vector.INDEX["head_yaw"]] = yaw
        out[i, vector.INDEX["head_pitch"]] = pitch
        out[i, vector.INDEX["head_roll"]] = roll
        centre = rigid[i].mean(axis=0) - ref.mean(axis=0)
        out[i, vector.INDEX["head_x"]] = centre[0] / ref_iod
        out[i, vector.INDEX["head_y"]] = centre[1] / ref_iod
        # undo the head's pose: back into the mean head's frame
        aligned[i] = ((points[i] - shift) @ rot) / scale
    iod = np.linalg.norm(aligned[:, lm.LEFT_IRIS_CENTER, :2] - aligned[:, lm.RIGHT_IRIS_CENTER, :2], axis=1)[:, None]
    p = aligned[..., :2] / iod[..., None]
    gap = np.linalg.norm(p[:, lm.LOWER_LIP_CENTER_INNER] - p[:, lm.UPPER_LIP_CENTER_INNER], axis=1)
    width = np.linalg.norm(p[:, 61] - p[:, 291], axis=1)
    corner_h = (p[:, 61, 1] + p[:, 291, 1]) / 2 - (p[:, 13, 1] + p[:, 14, 1]) / 2
    brow_h = p[:, list(lm.RIGHT_BROW + lm.LEFT_BROW), 1].mean(axis=1) - p[:, [159, 386], 1].mean(axis=1)
    dw = width - np.median(width)
    dh = corner_h - np.median(corner_h)
    db = brow_h - np.median(brow_h)
    out[:, vector.INDEX["jaw_open"]] = gap / JAW_GAP_IOD
    out[:, vector.INDEX["lip_width"]] = np.where(dw > 0, dw / WIDTH_PER_UNIT, 0.0)
    out[:, vector.INDEX["lip_round"]] = np.where(dw < 0, -dw / ROUND_NARROWING, 0.0)
    out[:, vector.INDEX["smile"]] = np.where(dh < 0, -dh / SMILE_UP, -dh / FROWN_DOWN)
    # brows: half of what is measured, the rest is tracking noise at this scale
    out[:, vector.INDEX["brows"]] = 0.5 * np.where(db < 0, -db / BROW_UP, -db / BROW_DOWN)
    for channel, upper, lower in (
        ("blink_left", lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER),
        ("blink_right", lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
    ):
        ear = np.array([eye_aspect_ratio(q, upper, lower) for q in aligned])
        open_ear = np.percentile(ear, 90)
        out[:, vector.INDEX[channel]] = np.clip((1 - ear / max(open_ear, 1e-6)) / 0.7, 0, 1)
    return vector.clip(out)


# Tracking jitter (about half of the frame-to-frame change in head pose) is smoothed out of the
# targets: Gaussian sigma in frames, light on the fast mouth, stronger on head and expression.
SMOOTH_SIGMA = {"mouth": 0.7, "other": 1.5}
MOUTH = ("jaw_open", "lip_width", "lip_round", "upper_lip", "lower_lip", "blink_left", "blink_right")


def smooth_targets(targets: np.ndarray) -> np.ndarray:
    """Zero-phase smoothing of tracked motion ``(n, DIM)`` along time (offline, training only)."""
    out = targets.copy()
    for name in vector.NAMES:
        sigma = SMOOTH_SIGMA["mouth" if name in MOUTH else "other"]
        out[:, vector.INDEX[name]] = gaussian_filter1d(targets[:, vector.INDEX[name]], sigma, mode="nearest")
    return out


def speech_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Log RMS loudness per video frame (dB), on the same grid as the motion."""
    env = np.full(n_frames, -100.0, np.float32)
    for i in range(n_frames):
        seg = audio[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME]
        if len(seg):
            env[i] = 20 * np.log10(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-5)
    return env


def blink_statistics(blinks: np.ndarray, fps: int = FPS, closed_above: float = 0.7) -> dict[str, float]:
    """Blinks in a tracked blink channel (both eyes: take the less closed one): how many, over
    how many seconds, and the median time the lids stay past ``closed_above`` (s)."""
    closed = blinks > closed_above
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    ends = np.flatnonzero(~closed[1:] & closed[:-1]) + 1
    lengths = [(e - s) / fps for s in starts for e in ends[ends > s][:1]]
    return {
        "count": float(len(starts)),
        "seconds": len(blinks) / fps,
        "length_median": float(np.median(lengths)) if lengths else float("nan"),
    }
