"""The identity cache: everything about a portrait that does not change from frame to frame.

Built once by ``enroll`` (face analysis, crop, person matte and background plate, warp mesh,
per-portrait deformation fields, mouth palette, region masks) and stored as one ``.npz`` file keyed
by the image's SHA-256 and the geometry parameters; ``IdentityStore`` loads it back without running
face analysis or segmentation again.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import GeometryParams
from ..errors import IdentityCacheError
from ..face import landmarks as lm
from ..face import mesh
from ..face.analysis import FaceAnalysis, FaceAnalyzer
from ..face.geometry import CropTransform, compute_crop
from ..face.image_io import load_image
from . import blendshapes, body, layers
from .mouth import MouthPalette, rest_gap, sample_palette
from .raster import backward_map

FORMAT_VERSION = 2  # 2: the person matte and the background plate
_ARRAYS = ("landmarks", "vertices", "triangles", "basis_pos", "basis_neg", "pose_weight", "centre", "plate",
           "region", "palette", "matte", "background")  # fmt: skip
NO_PERSON = (
    "no person found by segmentation (a painting or a cartoon?): the portrait is warped as one picture, "
    "so the background near the head moves with it"
)
NOT_SEGMENTED = "person segmentation was not run: the portrait is warped as one picture"


@dataclass(frozen=True)
class Identity:
    """A portrait ready to animate. Arrays are in output pixels of the ``out_size`` square frame.

    - ``landmarks`` (478, 3): face landmarks; ``vertices`` (540, 3): warp-mesh rest vertices
    - ``triangles`` (T, 3); ``basis_pos``/``basis_neg`` (C, 540, 2): expression fields
    - ``pose_weight`` (540,), ``centre`` (3,): head-pose weights and rotation centre
    - ``plate`` (S, S, 3) uint8: the portrait crop, the frame where nothing moves
    - ``roi`` (x0, y0, w, h) and ``region`` (h, w) bool: where the one-picture warp may change pixels
    - ``palette`` (5, 3): mouth-interior colours; ``own_gap``: the portrait's lip gap, px
    - ``matte`` (S, S) uint8 and ``background`` (S, S, 3) uint8: the person's alpha and the
      background plate behind it (``sonic_rt.render.layers``); both empty (size 0) when segmentation found
      no person, and then ``notes`` says so and the renderer warps the portrait as one picture
    """

    image_sha256: str
    params: GeometryParams
    crop: CropTransform
    roi: tuple[int, int, int, int]
    iod: float
    own_gap: float
    face_box: tuple[float, float, float, float]
    n_faces: int
    landmarks: np.ndarray
    vertices: np.ndarray
    triangles: np.ndarray
    basis_pos: np.ndarray
    basis_neg: np.ndarray
    pose_weight: np.ndarray
    centre: np.ndarray
    plate: np.ndarray
    region: np.ndarray
    palette: np.ndarray
    matte: np.ndarray
    background: np.ndarray
    notes: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def out_size(self) -> int:
        return self.crop.out_size

    @property
    def key(self) -> str:
        return cache_key(self.image_sha256, self.params)

    @property
    def layered(self) -> bool:
        """Whether the portrait has a person layer over a background plate."""
        return self.matte.size > 0

    @property
    def mouth_palette(self) -> MouthPalette:
        return MouthPalette.from_array(self.palette)

    def save(self, path: str | Path) -> None:
        meta = {
            "format": FORMAT_VERSION,
            "image_sha256": self.image_sha256,
            "params": asdict(self.params),
            "crop": asdict(self.crop),
            "roi": list(self.roi),
            "iod": self.iod,
            "own_gap": self.own_gap,
            "face_box": list(self.face_box),
            "n_faces": self.n_faces,
            "notes": list(self.notes),
        }
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 **{name: getattr(self, name) for name in _ARRAYS})  # fmt: skip
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Identity:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("format") != FORMAT_VERSION:  # an older cache (before layers: 1) is rebuilt
                    raise IdentityCacheError(
                        f"identity cache {path} has format {meta.get('format')}, need {FORMAT_VERSION}"
                    )
                arrays = {name: data[name] for name in _ARRAYS}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise IdentityCacheError(f"cannot read identity cache {path}: {err}") from err
        return cls(
            image_sha256=meta["image_sha256"],
            params=GeometryParams(**meta["params"]),
            crop=CropTransform(**meta["crop"]),
            roi=tuple(meta["roi"]),
            iod=meta["iod"],
            own_gap=meta["own_gap"],
            face_box=tuple(meta["face_box"]),
            n_faces=meta["n_faces"],
            notes=tuple(meta["notes"]),
            **arrays,
        )


def cache_key(image_sha256: str, params: GeometryParams) -> str:
    return f"{image_sha256[:32]}-e{params.expand_ratio:g}-r{params.min_resolution}"


def sha256_of(source: str | Path | bytes | np.ndarray) -> str:
    if isinstance(source, np.ndarray):
        digest = hashlib.sha256(str(source.shape).encode())
        digest.update(np.ascontiguousarray(source).tobytes())
        return digest.hexdigest()
    data = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    return hashlib.sha256(data).hexdigest()


def enroll(source: str | Path | bytes | np.ndarray, params: GeometryParams, analyzer: FaceAnalyzer) -> Identity:
    """Analyse a portrait (file path, encoded bytes, or RGB uint8 array) and build its identity."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    image = source if isinstance(source, np.ndarray) else load_image(source)
    sha = sha256_of(source)
    t1 = time.perf_counter()
    face = analyzer.analyze(image)
    t2 = time.perf_counter()
    identity = build_identity(image, face, params, sha, segment=analyzer.segment_person)
    t3 = time.perf_counter()
    timings.update(decode=(t1 - t0) * 1e3, analyze=(t2 - t1) * 1e3, build=(t3 - t2) * 1e3, total=(t3 - t0) * 1e3)
    identity.timings_ms.update(timings)
    return identity


def build_identity(
    image: np.ndarray,
    face: FaceAnalysis,
    params: GeometryParams,
    sha: str,
    segment: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Identity:
    """Everything the renderer needs, from an analysed portrait. ``segment`` gives the person
    probability of the crop (``FaceAnalyzer.segment_person``); without it there are no layers."""
    crop = compute_crop(face, params)
    plate = crop.crop_image(image)
    points = crop.to_output(face.landmarks).astype(np.float32)
    head, outer = mesh.ring_vertices(points, crop.out_size)
    frame = blendshapes.FaceFrame.from_landmarks(points)

    vertices = np.zeros((mesh.N_VERTICES, 3), dtype=np.float32)
    vertices[: mesh.N_MESH] = points[: mesh.N_MESH]
    centre = blendshapes.head_centre(vertices)
    vertices[mesh.HEAD_RING, :2] = head
    vertices[mesh.OUTER_RING, :2] = outer
    vertices[mesh.N_MESH :, 2] = centre[2]
    centre = blendshapes.head_centre(vertices)

    basis_pos, basis_neg = blendshapes.build_expression_basis(vertices, frame)
    x0, y0 = np.floor(outer.min(axis=0)).astype(int)
    x1, y1 = np.ceil(outer.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, crop.out_size), min(y1, crop.out_size)
    roi = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    # the region is exactly what the rest mesh covers: the only pixels a warp can ever write
    uncovered = np.float32(-1e6)
    grid = (np.full((roi[3], roi[2]), uncovered), np.full((roi[3], roi[2]), uncovered))
    rest = vertices.astype(np.float64)
    cover, _ = backward_map(rest[:, :2], rest[:, :2], rest[:, 2], mesh.triangles(), roi, grid)
    region = cover > uncovered
    t0 = time.perf_counter()
    matte, background, notes = _layers(plate, points, centre, segment)
    layers_ms = (time.perf_counter() - t0) * 1e3

    return Identity(
        image_sha256=sha,
        params=params,
        crop=crop,
        roi=roi,
        iod=frame.iod,
        own_gap=rest_gap(points),
        face_box=face.box,
        n_faces=face.n_faces,
        landmarks=points,
        vertices=vertices,
        triangles=mesh.triangles(),
        basis_pos=basis_pos,
        basis_neg=basis_neg,
        pose_weight=blendshapes.pose_weights(vertices),
        centre=centre.astype(np.float32),
        plate=plate,
        region=region.astype(bool),
        palette=sample_palette(plate, points, frame.iod).as_array(),
        matte=matte,
        background=background,
        notes=notes,
        timings_ms={"layers": layers_ms},
    )


def _layers(
    plate: np.ndarray, points: np.ndarray, centre: np.ndarray, segment: Callable[[np.ndarray], np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The matte, the background plate and notes (``sonic_rt.render.layers``); empty arrays and a note
    saying why when there are no layers."""
    none = np.zeros((0, 0), np.uint8), np.zeros((0, 0, 3), np.uint8)
    if segment is None:
        return *none, (NOT_SEGMENTED,)
    oval = points[list(lm.FACE_OVAL), :2]
    head = body.HeadNeck.from_landmarks(points, centre, size=plate.shape[0])
    layer = layers.build(plate, segment(plate), oval, head)
    if layer is None:
        return *none, (NO_PERSON,)
    return layer.matte, layer.background, ()


def enroll_cached(source: str | Path | bytes | np.ndarray, params: GeometryParams, analyzer: FaceAnalyzer,
                  directory: str | Path | None = None) -> Identity:  # fmt: skip
    """``enroll``, through the ``IdentityStore`` in ``directory`` when there is one and the source is
    encoded bytes (an array has no file to be cached by)."""
    if directory is not None and isinstance(source, bytes):
        return IdentityStore(directory).get(source, params, analyzer)
    return enroll(source, params, analyzer)


class IdentityStore:
    """A folder of identity caches; ``get`` enrols a portrait only the first time it is seen."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha: str, params: GeometryParams) -> Path:
        return self.root / f"{cache_key(sha, params)}.npz"

    def get(self, source: str | Path | bytes, params: GeometryParams, analyzer: FaceAnalyzer) -> Identity:
        path = self.path_for(sha256_of(source), params)
        if path.is_file():
            try:
                return Identity.load(path)
            except IdentityCacheError:
                path.unlink(missing_ok=True)  # corrupt or old: rebuild below
        identity = enroll(source, params, analyzer)
        identity.save(path)
        return identity
