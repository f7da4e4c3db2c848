"""The warp mesh of a portrait: MediaPipe's face surface plus two rings around it.

Vertices ``0..467`` are the face-mesh landmarks (iris points are left out: the eye is warped by
its lids). The mouth and eye holes of MediaPipe's surface are filled with strips between the
upper and lower contours, so an opening mouth or a closing lid stretches or folds those strips
and nothing else. Around the face oval sit a *head ring* (hair, ears, upper neck: moves with the
head) and an *outer ring* (fixed): the band between them absorbs head motion, so the
displacement falls smoothly to zero at the outer ring and everything beyond it is untouched.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict

import numpy as np

from .landmarks import (
    FACE_OVAL,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    N_MESH,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)

N_RING = len(FACE_OVAL)
HEAD_RING = slice(N_MESH, N_MESH + N_RING)
OUTER_RING = slice(N_MESH + N_RING, N_MESH + 2 * N_RING)
N_VERTICES = N_MESH + 2 * N_RING
OUTER_SCALE = 1.9  # outer ring: face oval scaled about its centre, clamped into the frame
HEAD_SHARE = 0.4  # head ring sits this far from the oval towards the outer ring
FRAME_INSET = 1.0  # px kept between the outer ring and the frame edge


@functools.cache
def surface_triangles() -> np.ndarray:
    """MediaPipe's 852 face-surface triangles, recovered from its tessellation edges.

    Every triangle of the surface is a 3-cycle of edges; the few 3-cycles that are not faces are
    the ones whose three edges are each shared by three cycles (a real edge borders at most two
    faces), so they are dropped.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    adjacent: defaultdict[int, set[int]] = defaultdict(set)
    for a, b in FACEMESH_TESSELATION:
        adjacent[a].add(b)
        adjacent[b].add(a)
    cycles = set()
    for a, b in FACEMESH_TESSELATION:
        for c in adjacent[a] & adjacent[b]:
            cycles.add(tuple(sorted((a, b, c))))
    uses = Counter(e for t in cycles for e in itertools.combinations(t, 2))
    faces = [t for t in sorted(cycles) if not all(uses[e] > 2 for e in itertools.combinations(t, 2))]
    return np.array(faces, dtype=np.int32)


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles filling the hole between two contours that share their end points."""
    tris = []
    for i in range(len(upper) - 1):
        a, b = upper[i], upper[i + 1]
        c, d = lower[i], lower[i + 1]
        if a == c:  # shared corner
            tris.append((a, b, d))
        elif b == d:
            tris.append((a, b, c))
        else:
            tris.extend([(a, b, d), (a, d, c)])
    return tris


def _ring_strip(inner: list[int], outer: list[int]) -> list[tuple[int, int, int]]:
    n = len(inner)
    tris = []
    for i in range(n):
        j = (i + 1) % n
        tris.extend([(inner[i], inner[j], outer[j]), (inner[i], outer[j], outer[i])])
    return tris


@functools.cache
def triangles() -> np.ndarray:
    """All triangles of the warp mesh, ``(T, 3)`` int32 vertex indices."""
    holes = (
        _strip(LIPS_INNER_UPPER, LIPS_INNER_LOWER)
        + _strip(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER)
        + _strip(LEFT_EYE_UPPER, LEFT_EYE_LOWER)
    )
    oval = list(FACE_OVAL)
    head = list(range(HEAD_RING.start, HEAD_RING.stop))
    outer = list(range(OUTER_RING.start, OUTER_RING.stop))
    rings = _ring_strip(oval, head) + _ring_strip(head, outer)
    return np.concatenate([surface_triangles(), np.array(holes + rings, dtype=np.int32)])


def ring_vertices(landmarks: np.ndarray, frame_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Head-ring and outer-ring points ``(N_RING, 2)`` for output-pixel ``landmarks``.

    Each ring point lies on the ray from the oval's centre through its face-oval landmark; the
    outer one at ``OUTER_SCALE`` or where the frame stops it, the head one ``HEAD_SHARE`` of the
    way out, so the band never collapses even when a tight crop puts the outer ring on the border.
    """
    oval = landmarks[list(FACE_OVAL), :2].astype(np.float64)
    centre = (oval.min(axis=0) + oval.max(axis=0)) / 2
    ray = oval - centre
    lo, hi = FRAME_INSET, frame_size - 1 - FRAME_INSET
    with np.errstate(divide="ignore", invalid="ignore"):
        limit_hi = np.where(ray > 0, (hi - centre) / ray, np.inf)
        limit_lo = np.where(ray < 0, (lo - centre) / ray, np.inf)
    scale = np.minimum(OUTER_SCALE, np.minimum(limit_hi, limit_lo).min(axis=1))
    scale = np.maximum(scale, 1.0)
    outer = centre + ray * scale[:, None]
    head = centre + ray * (1.0 + HEAD_SHARE * (scale[:, None] - 1.0))
    return head, np.clip(outer, lo, hi)
