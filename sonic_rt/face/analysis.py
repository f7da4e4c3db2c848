"""Face analysis: find the largest face and its 478 dense 3-D landmarks (MediaPipe).

Detection runs MediaPipe's full-range face detector on the whole image (downscaled), so small
faces in half-body pictures are found; the landmark model then runs on a square crop around the
chosen face, which keeps its accuracy independent of the image size. The analyser also holds
MediaPipe's selfie segmentation, which tells the person from the background (``sonic_rt.render.layers``).
All three models ship inside the mediapipe wheel: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import FaceCutOff, FaceTooSmall, NoFace  # noqa: E402
from .landmarks import FACE_OVAL, N_LANDMARKS  # noqa: E402

DETECT_MAX_SIDE = 1024  # detector input is downscaled to this long side (it works at 192 px anyway)
MESH_CROP_SIDE = 512  # the landmark model sees the face in a square crop of this size
MESH_CROP_SCALE = 1.8  # crop side as a multiple of the detected box side
MIN_DETECTION_SCORE = 0.5
MIN_FACE_PX = 64  # inter-ocular distance x ~2.5 ~ face width; below this the mouth is a few pixels
CUT_OFF_TOLERANCE = 0.02  # fraction of face size a landmark may lie outside the image


@dataclass(frozen=True)
class FaceAnalysis:
    """Where the face is in the image.

    ``landmarks`` is ``(478, 3)`` float32 in image pixels: x right, y down, z towards the back of
    the head (same scale as x, origin near the head centre, smaller = closer to the camera).
    ``box`` is ``(x0, y0, x1, y1)`` of the face-oval landmarks. ``n_faces`` counts every face found.
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    n_faces: int
    image_size: tuple[int, int]  # (height, width)

    @property
    def face_size(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    @property
    def notes(self) -> list[str]:
        if self.n_faces > 1:
            return [f"{self.n_faces} faces found; using the largest"]
        return []


class FaceAnalyzer:
    """Loads the two MediaPipe models once; ``analyze`` is thread-safe (serialised)."""

    def __init__(self) -> None:
        # MediaPipe's C++ start-up chatter (TFLite delegate, absl warnings) goes to fd 2 before
        # any log level applies; it is silenced for the start-up and a warm-up run only.
        with _quiet_native_stderr():
            import mediapipe as mp

            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=MIN_DETECTION_SCORE
            )
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
            )
            # the general model (256 x 256 input): it keeps the shoulders and hair the landscape one cuts
            self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            from .samples import load_sample

            warm = cv2.resize(load_sample("sample:astronaut"), (MESH_CROP_SIDE, MESH_CROP_SIDE))
            self._detector.process(warm)
            self._mesh.process(warm)
            self._selfie.process(warm)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()
        self._selfie.close()

    def analyze(self, image: np.ndarray) -> FaceAnalysis:
        """Analyse an ``(H, W, 3)`` uint8 RGB image. Raises NoFace, FaceTooSmall or FaceCutOff."""
        height, width = image.shape[:2]
        with self._lock:
            boxes = self._detect(image)
            if not boxes:
                raise NoFace("no face found in the image")
            boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
            landmarks = self._landmarks(image, boxes[0])
        if landmarks is None:
            raise NoFace("a face-like region was found but no face landmarks could be fitted")
        oval = landmarks[list(FACE_OVAL), :2]
        x0, y0 = oval.min(axis=0)
        x1, y1 = oval.max(axis=0)
        analysis = FaceAnalysis(
            landmarks=landmarks,
            box=(float(x0), float(y0), float(x1), float(y1)),
            n_faces=len(boxes),
            image_size=(height, width),
        )
        _check_usable(analysis)
        return analysis

    def landmarks_only(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the largest face, or None; no usability checks (for measuring frames)."""
        with self._lock:
            boxes = self._detect(image)
            if not boxes:
                return None
            boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
            return self._landmarks(image, boxes[0])

    def segment_person(self, image: np.ndarray) -> np.ndarray:
        """Person probability ``(H, W)`` float32 in 0..1 of an ``(H, W, 3)`` uint8 RGB image (the
        model runs on it whole: give it the portrait crop, not a wide picture)."""
        with self._lock:
            result = self._selfie.process(np.ascontiguousarray(image))
        if result.segmentation_mask is None:
            return np.zeros(image.shape[:2], np.float32)
        return np.clip(result.segmentation_mask, 0.0, 1.0).astype(np.float32)

    def _detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        result = self._detector.process(np.ascontiguousarray(small))
        boxes = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            boxes.append(
                (rb.xmin * width, rb.ymin * height, (rb.xmin + rb.width) * width, (rb.ymin + rb.height) * height)
            )
        return boxes

    def _landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * MESH_CROP_SCALE
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        scale = MESH_CROP_SIDE / side
        # affine map image -> crop; pixels outside the image become a neutral border
        affine = np.array([[scale, 0, MESH_CROP_SIDE / 2 - cx * scale], [0, scale, MESH_CROP_SIDE / 2 - cy * scale]])
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.warpAffine(
            image,
            affine,
            (MESH_CROP_SIDE, MESH_CROP_SIDE),
            flags=interp,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(127, 127, 127),
        )
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
        if len(pts) != N_LANDMARKS:
            return None
        pts *= MESH_CROP_SIDE  # to crop pixels (z shares x's normalisation)
        out = np.empty_like(pts)
        out[:, 0] = (pts[:, 0] - affine[0, 2]) / scale
        out[:, 1] = (pts[:, 1] - affine[1, 2]) / scale
        out[:, 2] = pts[:, 2] / scale
        return out.astype(np.float32)


@contextlib.contextmanager
def _quiet_native_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_usable(analysis: FaceAnalysis) -> None:
    height, width = analysis.image_size
    size = analysis.face_size
    if size < MIN_FACE_PX:
        raise FaceTooSmall(f"the face is {size:.0f} px across; at least {MIN_FACE_PX} px is needed")
    tol = CUT_OFF_TOLERANCE * size
    pts = analysis.landmarks[:, :2]
    sides = []
    if pts[:, 0].min() < -tol:
        sides.append("left")
    if pts[:, 0].max() > width - 1 + tol:
        sides.append("right")
    if pts[:, 1].min() < -tol:
        sides.append("top")
    if pts[:, 1].max() > height - 1 + tol:
        sides.append("bottom")
    if sides:
        raise FaceCutOff(
            f"the face is cut off by the image border ({', '.join(sides)}); use a photo with the whole face"
        )
