"""The portrait as two layers: a person who moves, over a background plate that never does.

Built once at enrolment from the portrait crop and a person probability (MediaPipe's selfie
segmentation, ``FaceAnalyzer.segment_person``):

1. **Matte.** The probability is coarse (the model sees 256 px) and soft. GrabCut, seeded with
   *sure person* where it is confident and *sure background* far outside, redraws the boundary on
   the photo's own colour edges (a strand of hair, a collar at the edge of the silhouette go with
   the person when their colours do). Around the head, where everything moves with it, what the
   model is unsure of is kept as person as well where it is a small blob at the edge (a flower in
   the hair, an earring), and only what is connected to the face is kept. A guided filter then
   feathers the hard cut into a soft matte that follows the image (hair at the edge is partly
   transparent).
2. **Plate.** Behind the person the background is filled once, so that a head turning away
   reveals plausible background instead of smeared face: a smooth blend of the background colours
   nearest to each hidden pixel (``fill_background``). Where the fill is not
   the photo's own background, the matte is raised just enough that the person layer explains the
   photo (``explaining_alpha``): a fringe of hair the segmentation missed goes with the person.
3. **Person layer.** Stored premultiplied, ``person = portrait - (1 - matte) * plate``: laid
   unmoved over the plate it gives the portrait back (to a grey level), whatever the fill. Per
   frame the renderer warps the person layer and its matte with one map and composites them over
   the plate; a pixel the warped matte does not reach is the plate's own, bit for bit.

When the matte does not cover the face (a painting or a cartoon the model does not read as a
person) there are no layers and the renderer warps the portrait as one picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .body import HeadNeck

WORK_SIDE = 192  # GrabCut runs at this size (about 60 ms); its cut is feathered at full size
SURE_PERSON = 0.9  # probability above which (eroded) a pixel is certainly the person
SURE_BACKGROUND = 0.1  # ... below which (eroded) certainly background
UNSURE_PERSON = 0.25  # near the head, a probability above this is taken as person (accessories)...
ACCESSORY_IOD = 0.4  # ... in blobs that stick out of the cut by at most this much
GRABCUT_ITERATIONS = 4
FEATHER_SHARE = 1 / 128  # guided-filter radius as a share of the frame side
FEATHER_EPS = 1e-3 * 255**2  # guided-filter regulariser (guide in 0..255 grey levels)
ZONE_STEP = 4  # px between the samples of the head zone
MIN_FACE_COVER = 0.6  # the matte's mean over the face oval for the image to count as a person
HOLE_LEVEL = 4  # matte levels (of 255) above which a pixel is person and the plate is filled


@dataclass(frozen=True)
class Layers:
    """``matte`` (S, S) uint8: the person's alpha; ``background`` (S, S, 3) uint8: the plate."""

    matte: np.ndarray
    background: np.ndarray


def refine_matte(
    image: np.ndarray,
    probability: np.ndarray,
    face_oval: np.ndarray,
    head_zone: np.ndarray | None = None,
    accessory_px: float = 0.0,
) -> np.ndarray:
    """Soft matte ``(S, S)`` float32 in 0..1 from the photo ``(S, S, 3)`` and a coarse person
    probability ``(S, S)`` (see the module's step 1). In ``head_zone`` (S, S bool) what the model
    is unsure of goes with the person too, where it is a blob sticking out of the cut by at most
    ``accessory_px``: a flower in the hair, an earring against a wall of its own colour would
    otherwise stay behind when the head moves (a garland behind the head, reaching farther, stays
    background). Only the parts connected to the face (the polygon ``face_oval`` (N, 2)) are kept."""
    side = image.shape[0]
    n = min(WORK_SIDE, side)
    small = cv2.resize(image, (n, n), interpolation=cv2.INTER_AREA)
    prob = cv2.resize(probability.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)
    seed = np.where(prob > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    kernel = np.ones((max(3, n // 32),) * 2, np.uint8)
    seed[cv2.erode((prob > SURE_PERSON).astype(np.uint8), kernel) > 0] = cv2.GC_FGD
    seed[cv2.erode((prob < SURE_BACKGROUND).astype(np.uint8), kernel) > 0] = cv2.GC_BGD
    if (seed == cv2.GC_FGD).any() and np.isin(seed, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # its colour models start from k-means on OpenCV's RNG: the same image, the same matte
        cv2.grabCut(small, seed, None, *models, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    cut = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    cut = cv2.resize(cut, (side, side), interpolation=cv2.INTER_LINEAR) > 0.5
    if head_zone is not None and accessory_px > 0:
        cut |= _accessories(cut, head_zone & (probability > UNSURE_PERSON) & ~cut, accessory_px)
    cut = _attached(cut, face_oval).astype(np.float32)
    radius = max(2, round(side * FEATHER_SHARE))
    soft = cv2.ximgproc.guidedFilter(image, cut, radius, FEATHER_EPS)
    return np.clip(soft, 0.0, 1.0)


def _accessories(cut: np.ndarray, unsure: np.ndarray, accessory_px: float) -> np.ndarray:
    """The blobs of ``unsure`` (S, S bool) that stick out of ``cut`` by at most ``accessory_px``."""
    count, labels = cv2.connectedComponents(unsure.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(cut)
    away = cv2.distanceTransform((~cut).astype(np.uint8), cv2.DIST_L2, 5)
    farthest = np.zeros(count, np.float32)
    np.maximum.at(farthest, labels[unsure], away[unsure])
    keep = np.flatnonzero(farthest <= accessory_px)
    return np.isin(labels, keep[keep > 0])


def _attached(mask: np.ndarray, face_oval: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` (S, S bool) connected to the face (or all of it, if none are)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    inside = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(face_oval).astype(np.int32)], 1)
    keep = np.unique(labels[(inside > 0) & mask])
    return np.isin(labels, keep[keep > 0]) if len(keep) and keep.max() > 0 else mask


def face_cover(matte: np.ndarray, face_oval: np.ndarray) -> float:
    """Mean of ``matte`` (0..1 or uint8 as 0..255 -> 0..1) over the polygon ``face_oval`` (N, 2)."""
    inside = np.zeros(matte.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(face_oval).astype(np.int32)], 1)
    if not inside.any():
        return 0.0
    scale = 255.0 if matte.dtype == np.uint8 else 1.0
    return float(matte[inside > 0].mean() / scale)


def fill_background(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``image`` (S, S, 3) with ``hole`` (S, S bool) filled with a smooth blend of the background
    around it: each hole pixel takes the colours of the nearest background at the finest scale that
    has some (a push-pull pyramid: coarser levels fill what finer ones lack). No streaks and no
    copies of the person; texture is not continued (a thin band of it shows when the head moves)."""
    out = image.copy()
    if not hole.any() or hole.all():
        return out
    levels = []
    known = ~hole
    colour, weight = image.astype(np.float32) * known[..., None], known.astype(np.float32)
    while True:
        levels.append((colour, weight))
        if min(weight.shape) <= 2 or (weight > 1e-3).all():
            break
        colour, weight = cv2.pyrDown(colour), cv2.pyrDown(weight)
    fill = levels[-1][0] / np.maximum(levels[-1][1], 1e-6)[..., None]
    for colour, weight in reversed(levels[:-1]):
        up = cv2.pyrUp(fill, dstsize=weight.shape[::-1])
        here = np.clip(weight, 0.0, 1.0)[..., None]
        fill = here * colour / np.maximum(weight, 1e-6)[..., None] + (1.0 - here) * up
    out[hole] = np.clip(np.round(fill[hole]), 0, 255).astype(np.uint8)
    return out


def explaining_alpha(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``(S, S)`` float32: per pixel, the least alpha with which ``image`` is some colour laid over
    ``background`` (``image = a F + (1 - a) B`` with ``F`` in 0..255)."""
    i, b = image.astype(np.float32), background.astype(np.float32)
    darker = (b - i) / np.maximum(b, 1.0)
    lighter = (i - b) / np.maximum(255.0 - b, 1.0)
    return np.clip(np.maximum(darker, lighter).max(axis=-1), 0.0, 1.0)


def build(image: np.ndarray, probability: np.ndarray, face_oval: np.ndarray, head: HeadNeck) -> Layers | None:
    """The layers of the portrait crop ``image`` (S, S, 3) with person ``probability`` (S, S), or
    None when the matte does not cover the face (the polygon ``face_oval`` (N, 2)). ``head`` says
    where the person moves with the head (where accessories are kept with the person)."""
    side = image.shape[0]
    ys, xs = np.mgrid[0:side:ZONE_STEP, 0:side:ZONE_STEP]
    zone = (head.weight(np.stack([xs, ys], axis=-1).reshape(-1, 2)) >= 1.0).reshape(xs.shape)
    head_zone = cv2.resize(zone.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST) > 0
    soft = refine_matte(image, probability, face_oval, head_zone, ACCESSORY_IOD * head.iod)
    if face_cover(soft, face_oval) < MIN_FACE_COVER:
        return None
    matte = np.round(soft * 255).astype(np.uint8)
    hole = matte > HOLE_LEVEL  # the plate is the photo's own elsewhere
    background = fill_background(image, hole)
    explained = np.ceil(explaining_alpha(image, background) * 255).astype(np.uint8)
    matte[hole] = np.maximum(matte[hole], explained[hole])
    return Layers(matte=matte, background=background)


def person_layer(image: np.ndarray, matte: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``(S, S, 4)`` uint8: the premultiplied person ``image - (1 - matte) * background`` and, as
    the fourth channel, ``255 - matte`` (what of the plate shows through)."""
    see_through = 255 - matte
    person = image.astype(np.float32) - background.astype(np.float32) * (see_through[..., None] / 255.0)
    out = np.empty((*image.shape[:2], 4), np.uint8)
    out[..., :3] = np.clip(np.round(person), 0, 255)
    out[..., 3] = see_through
    return out


def composite(person: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` uint8: a (warped) ``person_layer`` ``(h, w, 4)`` over ``background``; where
    the person's fourth channel is 255 and its colour 0, the background's pixel, bit for bit."""
    see_through = cv2.cvtColor(cv2.extractChannel(person, 3), cv2.COLOR_GRAY2RGB)
    behind = cv2.multiply(background, see_through, scale=1 / 255)
    return cv2.add(cv2.cvtColor(person, cv2.COLOR_RGBA2RGB), behind)
