import json

import numpy as np
import pytest

from sonic_rt.config import GeometryParams
from sonic_rt.errors import IdentityCacheError
from sonic_rt.motion import vector
from sonic_rt.render import identity as identity_module
from sonic_rt.render.identity import NO_PERSON, Identity, IdentityStore, enroll, sha256_of
from sonic_rt.render.renderer import Renderer
from tests.conftest import png_bytes

ARRAYS = ("landmarks", "vertices", "triangles", "basis_pos", "basis_neg", "plate", "region", "palette", "matte",
          "background")  # fmt: skip


class ExplodingAnalyzer:
    def analyze(self, image):
        raise AssertionError("face analysis ran although a cached identity existed")

    def segment_person(self, image):
        raise AssertionError("segmentation ran although a cached identity existed")


class NoPersonAnalyzer:
    """The real face analysis, but a segmentation that finds nobody (as on a cartoon)."""

    def __init__(self, analyzer) -> None:
        self.analyze = analyzer.analyze

    def segment_person(self, image):
        return np.zeros(image.shape[:2], np.float32)


def _same(a: Identity, b: Identity) -> None:
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.params, a.crop, a.roi, a.image_sha256, a.notes) == (b.params, b.crop, b.roi, b.image_sha256, b.notes)


def test_round_trip_renders_identically(tmp_path, astronaut_identity):
    path = tmp_path / "id.npz"
    astronaut_identity.save(path)
    loaded = Identity.load(path)
    _same(astronaut_identity, loaded)
    vec = vector.make(jaw_open=0.5, smile=0.4, blink_left=0.7, head_yaw=8.0)
    assert np.array_equal(Renderer(astronaut_identity).render(vec), Renderer(loaded).render(vec))


def test_store_reuses_the_cache_without_analysis(tmp_path, astronaut, analyzer):
    data = png_bytes(astronaut)
    store = IdentityStore(tmp_path)
    first = store.get(data, GeometryParams(), analyzer)
    assert store.path_for(sha256_of(data), GeometryParams()).is_file()
    again = store.get(data, GeometryParams(), ExplodingAnalyzer())
    _same(first, again)


def test_cache_is_keyed_by_geometry(tmp_path, astronaut, analyzer):
    data = png_bytes(astronaut)
    store = IdentityStore(tmp_path)
    a = store.get(data, GeometryParams(expand_ratio=0.5), analyzer)
    b = store.get(data, GeometryParams(expand_ratio=0.2, min_resolution=256), analyzer)
    assert a.key != b.key and b.out_size == 256 and b.plate.shape == (256, 256, 3)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_corrupt_cache_is_an_error_and_the_store_rebuilds(tmp_path, astronaut, analyzer):
    data = png_bytes(astronaut)
    store = IdentityStore(tmp_path)
    path = store.path_for(sha256_of(data), GeometryParams())
    path.write_bytes(b"garbage")
    with pytest.raises(IdentityCacheError):
        Identity.load(path)
    rebuilt = store.get(data, GeometryParams(), analyzer)
    assert Identity.load(path).image_sha256 == rebuilt.image_sha256


def test_the_matte_and_plate_are_cached_and_round_trip(tmp_path, astronaut_identity):
    ident = astronaut_identity
    assert ident.layered and ident.notes == ()
    assert ident.matte.shape == (512, 512) and ident.matte.dtype == np.uint8
    assert ident.background.shape == (512, 512, 3) and ident.background.dtype == np.uint8
    path = tmp_path / "id.npz"
    ident.save(path)
    with np.load(path) as data:
        assert np.array_equal(data["matte"], ident.matte) and np.array_equal(data["background"], ident.background)
    loaded = Identity.load(path)
    assert loaded.layered
    _same(ident, loaded)


def test_an_old_cache_is_rebuilt(tmp_path, astronaut, analyzer):
    """A cache written before layers (format 1) does not load; the store enrols again."""
    data = png_bytes(astronaut)
    store = IdentityStore(tmp_path)
    first = store.get(data, GeometryParams(), analyzer)
    path = store.path_for(sha256_of(data), GeometryParams())
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("matte", "background")}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    meta["format"] = 1
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    with pytest.raises(IdentityCacheError, match="format 1"):
        Identity.load(path)
    rebuilt = store.get(data, GeometryParams(), analyzer)
    assert rebuilt.layered
    _same(first, Identity.load(path))


def test_no_person_falls_back_to_the_one_picture_warp_and_says_so(astronaut, analyzer, astronaut_identity, tmp_path):
    flat = enroll(astronaut, GeometryParams(), NoPersonAnalyzer(analyzer))
    assert not flat.layered and flat.notes == (NO_PERSON,)
    assert "no person found" in flat.notes[0]
    renderer = Renderer(flat)
    assert not renderer.layered
    # today's warp: frame for frame what the layered portrait gives with its layers switched off
    today = Renderer(astronaut_identity, layers=False)
    for vec in (vector.neutral(), vector.make(jaw_open=0.5, head_yaw=12, head_roll=-6, head_x=0.2)):
        assert np.array_equal(renderer.render(vec), today.render(vec))
    # and the note survives the cache
    flat.save(tmp_path / "flat.npz")
    loaded = Identity.load(tmp_path / "flat.npz")
    assert loaded.notes == (NO_PERSON,) and not loaded.layered


def test_without_segmentation_there_are_no_layers(astronaut, analyzer):
    face = analyzer.analyze(astronaut)
    ident = identity_module.build_identity(astronaut, face, GeometryParams(), sha256_of(astronaut))
    assert not ident.layered and ident.notes == (identity_module.NOT_SEGMENTED,)
