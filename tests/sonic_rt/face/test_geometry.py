import numpy as np
import pytest

from sonic_rt.config import GeometryParams
from sonic_rt.face.analysis import FaceAnalysis
from sonic_rt.face.geometry import compute_crop


def _face(box, size=(1000, 800)):
    return FaceAnalysis(landmarks=np.zeros((478, 3), np.float32), box=box, n_faces=1, image_size=size)


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.5, 1.0])
def test_crop_side_follows_expand_ratio(ratio):
    crop = compute_crop(_face((300, 300, 500, 500)), GeometryParams(expand_ratio=ratio))
    assert crop.side == round(200 * (1 + 2 * ratio))
    assert crop.x0 + crop.side / 2 == pytest.approx(400, abs=1)


def test_crop_moves_inside_the_image_and_shrinks_to_fit():
    crop = compute_crop(_face((10, 10, 210, 210)), GeometryParams(expand_ratio=0.5))
    assert (crop.x0, crop.y0) == (0, 0) and crop.side == 400
    crop = compute_crop(_face((100, 100, 600, 600), size=(700, 700)), GeometryParams(expand_ratio=1.0))
    assert crop.side == 700 and (crop.x0, crop.y0) == (0, 0)


def test_output_is_min_resolution_square():
    crop = compute_crop(_face((300, 300, 500, 500)), GeometryParams(min_resolution=768))
    plate = crop.crop_image(np.zeros((1000, 800, 3), np.uint8))
    assert plate.shape == (768, 768, 3)
    pts = crop.to_output(np.array([[crop.x0 - 0.5, crop.y0 - 0.5, 10.0]]))
    assert pts[0, :2].tolist() == pytest.approx([-0.5, -0.5]) and pts[0, 2] == pytest.approx(10 * crop.scale)


@pytest.mark.parametrize(("kwargs", "match"), [({"expand_ratio": 2}, "expand_ratio"),
                         ({"min_resolution": 64}, "min_resolution"), ({"min_resolution": 511}, "even")])  # fmt: skip
def test_params_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeometryParams(**kwargs)


def test_params_round_trip_json():
    params = GeometryParams(expand_ratio=0.2, min_resolution=1024)
    assert GeometryParams.from_json(params.to_json()) == params
