"""Synthesised mouth interior: what an opening mouth shows instead of stretched lip texture.

Inside the deformed inner-lip contour the renderer paints a dark cavity, a band of upper teeth
under the upper lip, a fainter lower-teeth band and a tongue, all coloured from the portrait
(its lips, its skin brightness, its own teeth when the photo shows them) so paintings and photos
each get a matching palette. Layers are drawn in the mouth's own frame (corner to corner), so a
tilted head keeps its teeth under its upper lip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face import landmarks as lm

AA_SHIFT = 3  # fillPoly sub-pixel bits
OPEN_FADE_PX = 1.5  # the interior fades in over this much opening beyond the portrait's own


@dataclass(frozen=True)
class MouthPalette:
    """RGB colours (float32, 0..255) sampled from the portrait at enrolment."""

    lip: np.ndarray
    skin: np.ndarray
    teeth: np.ndarray
    cavity: np.ndarray
    tongue: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.stack([self.lip, self.skin, self.teeth, self.cavity, self.tongue]).astype(np.float32)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> MouthPalette:
        return cls(*[np.asarray(row, dtype=np.float32) for row in arr])


def _mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    pts = np.round(polygon * (1 << AA_SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=AA_SHIFT)
    return mask


def sample_palette(plate: np.ndarray, points: np.ndarray, iod: float) -> MouthPalette:
    """Colours for the interior, from the portrait ``plate`` and its output-pixel landmarks."""
    h, w = plate.shape[:2]
    outer = np.concatenate([points[list(lm.LIPS_OUTER_UPPER), :2], points[list(lm.LIPS_OUTER_LOWER[-2:0:-1]), :2]])
    inner = lm.inner_mouth_polygon(points)
    lips_mask = (_mask((h, w), outer) > 127) & ~(_mask((h, w), inner) > 0)
    pixels = plate.reshape(-1, 3).astype(np.float32)
    lip = np.median(pixels[lips_mask.ravel()], axis=0) if lips_mask.any() else np.array([150, 80, 80], np.float32)

    skin_pts = points[[50, 280, 5, 101, 330], :2]
    radius = max(2, int(0.05 * iod))
    patches = []
    for x, y in np.round(skin_pts).astype(int):
        patch = plate[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        if patch.size:
            patches.append(patch.reshape(-1, 3))
    skin = np.median(np.concatenate(patches), axis=0).astype(np.float32)

    face_mask = _mask((h, w), points[list(lm.FACE_OVAL), :2]) > 127
    luminance = plate[face_mask].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = float(np.percentile(luminance, 97))
    default_teeth = np.array([238, 232, 218], np.float32) * 0.85 + skin * 0.15
    teeth = default_teeth * min(1.0, 0.92 * bright / 230.0)
    inside = _mask((h, w), inner) > 127
    if inside.sum() > 20:  # the portrait shows its own mouth interior: use its brightest part
        own = plate[inside].astype(np.float32)
        own_lum = own @ np.array([0.299, 0.587, 0.114], np.float32)
        top = own[own_lum >= np.percentile(own_lum, 85)]
        chroma = float(np.ptp(top.mean(axis=0)))
        if top.mean() > 0.55 * bright and chroma < 45:
            teeth = top.mean(axis=0)
    cavity = lip * 0.18 + np.array([6, 2, 2], np.float32)
    tongue = lip * 0.62 + skin * 0.08
    return MouthPalette(lip=lip, skin=skin, teeth=teeth, cavity=cavity, tongue=tongue)


def rest_gap(points: np.ndarray) -> float:
    """Opening between the inner lips at the centre, px."""
    up = points[lm.UPPER_LIP_CENTER_INNER, :2]
    lo = points[lm.LOWER_LIP_CENTER_INNER, :2]
    return float(np.hypot(*(lo - up)))


def paint_interior(
    frame: np.ndarray,
    points: np.ndarray,
    rest: np.ndarray,
    plate: np.ndarray,
    palette: MouthPalette,
    iod: float,
    own_gap: float,
) -> None:
    """Draw the interior into ``frame`` (in place) for deformed output-pixel ``points`` (>=468, 2).

    ``rest``/``plate`` are the portrait's own landmarks and pixels: where the photo already shows
    an open mouth, its own teeth stay attached to the upper lip and its tongue to the lower lip,
    and only the extra opening between them is synthesised. ``own_gap`` is ``rest_gap(rest)``.
    """
    gap = rest_gap(points)
    fade = float(np.clip((gap - own_gap) / OPEN_FADE_PX, 0.0, 1.0))
    if fade <= 0.0:
        return
    polygon = lm.inner_mouth_polygon(points).astype(np.float64)
    h, w = frame.shape[:2]
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    alpha = _mask((y1 - y0, x1 - x0), polygon - [x0, y0]).astype(np.float32) * (fade / 255.0)
    if not alpha.any():
        return

    mouth = _mouth_frame(points)
    mid, ex, ey, half = mouth
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rx, ry = xs - mid[0], ys - mid[1]
    u = (rx * ex[0] + ry * ex[1]) / half
    v = rx * ey[0] + ry * ey[1]
    v_up, v_lo = _lip_curve(points, mouth, lm.LIPS_INNER_UPPER, u), _lip_curve(points, mouth, lm.LIPS_INNER_LOWER, u)
    opening = np.maximum(v_lo - v_up, 1e-3)
    depth_up = v - v_up  # px below the upper lip
    depth_lo = v_lo - v  # px above the lower lip
    across = np.clip(np.abs(u), 0, 1)

    colour = np.empty(u.shape + (3,), np.float32)
    glow = np.exp(-np.minimum(depth_up, depth_lo).clip(0) / max(0.04 * iod, 1.0))
    colour[:] = palette.cavity
    colour += (palette.lip * 0.45 - palette.cavity) * (0.5 * glow)[..., None]

    tongue_h = np.minimum(0.35 * opening, 0.16 * iod)
    tongue = np.clip(1.0 - ((u / 0.7) ** 2 + ((depth_lo - 0.3 * tongue_h) / np.maximum(tongue_h, 1e-3)) ** 2), 0, 1)
    tongue = np.sqrt(tongue) * np.clip(gap / (0.15 * iod), 0, 1)
    colour += (palette.tongue * (0.75 + 0.25 * (1 - across))[..., None] - colour) * tongue[..., None]

    taper = 1.0 - 0.6 * across**2
    teeth_h = np.minimum(0.5 * opening, 0.1 * iod) * taper
    upper_teeth = _band(depth_up, teeth_h, across, width=0.78)
    lower_teeth = 0.4 * _band(depth_lo, 0.4 * teeth_h, across, width=0.55) * np.clip(gap / (0.3 * iod) - 0.5, 0, 1)
    shade = (0.9 - 0.5 * across**2)[..., None]
    lip_shadow = (1.0 - 0.4 * np.exp(-np.clip(depth_up, 0, None) / max(0.015 * iod, 0.8)))[..., None]
    teeth_colour = palette.teeth * shade * lip_shadow * _tooth_gaps(u * half, iod)[..., None]
    colour += (teeth_colour - colour) * upper_teeth[..., None]
    colour += (palette.teeth * shade * 0.7 - colour) * lower_teeth[..., None]

    if own_gap > 1.0:
        colour = _own_interior(colour, plate, rest, u, v - v_up, v_lo - v)

    roi = frame[y0:y1, x0:x1].astype(np.float32)
    roi += (colour - roi) * alpha[..., None]
    frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


def _band(depth: np.ndarray, height: np.ndarray, across: np.ndarray, width: float) -> np.ndarray:
    """Soft band from the lip edge (depth 0) to ``height`` px, fading out towards the corners."""
    soft = np.maximum(0.25 * height, 0.6)
    inside = np.clip((height - depth) / soft, 0, 1) * np.clip(depth / 0.6 + 1, 0, 1)
    return inside * np.clip((width - across) / 0.25, 0, 1)


def _tooth_gaps(x: np.ndarray, iod: float) -> np.ndarray:
    """Faint darker lines between teeth: incisors ~0.13 IOD wide, centred on the midline."""
    width = 0.13 * iod * (1.0 - 0.25 * np.clip(np.abs(x) / (0.5 * iod), 0, 1))
    phase = np.abs(x) / np.maximum(width, 1e-3)
    dist = np.abs(phase - np.round(phase)) * width  # px to the nearest gap
    return 1.0 - 0.12 * np.exp(-((dist / max(0.008 * iod, 0.5)) ** 2))


def _mouth_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mouth frame: centre, unit axis corner->corner, unit normal (down), half width px."""
    left, right = points[lm.INNER_CORNERS[0], :2], points[lm.INNER_CORNERS[1], :2]
    axis = (right - left).astype(np.float64)
    half = max(float(np.hypot(*axis)) / 2, 1.0)
    ex = axis / (2 * half)
    return (left + right) / 2, ex, np.array([-ex[1], ex[0]]), half


def _lip_curve(points: np.ndarray, mouth: tuple, ids: tuple[int, ...], u: np.ndarray) -> np.ndarray:
    """Offset (px, along the normal of ``mouth = _mouth_frame(points)``) of a lip contour at ``u``."""
    mid, ex, ey, half = mouth
    rel = points[list(ids), :2] - mid
    cu, cv = (rel @ ex) / half, rel @ ey
    order = np.argsort(cu)
    return np.interp(u, cu[order], cv[order]).astype(np.float32)


def _own_interior(
    colour: np.ndarray, plate: np.ndarray, rest: np.ndarray, u: np.ndarray, depth_up: np.ndarray, depth_lo: np.ndarray
) -> np.ndarray:
    """Blend in the portrait's own interior: upper half hangs from the upper lip, lower from the lower."""
    mouth = _mouth_frame(rest)
    mid, ex, ey, half = mouth
    r_up = _lip_curve(rest, mouth, lm.LIPS_INNER_UPPER, u)
    r_lo = _lip_curve(rest, mouth, lm.LIPS_INNER_LOWER, u)
    own_half = np.maximum(r_lo - r_up, 0.0) / 2
    from_upper = depth_up <= depth_lo
    offset = np.where(from_upper, r_up + depth_up, r_lo - depth_lo)
    along = u * half
    map_x = (mid[0] + along * ex[0] + offset * ey[0]).astype(np.float32)
    map_y = (mid[1] + along * ex[1] + offset * ey[1]).astype(np.float32)
    own = cv2.remap(plate, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    soft = np.maximum(0.35 * own_half, 1.5)
    weight = np.clip((own_half - np.minimum(depth_up, depth_lo)) / soft + 0.5, 0, 1)[..., None]
    return colour + (own - colour) * weight
