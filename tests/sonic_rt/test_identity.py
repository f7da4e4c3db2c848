import numpy as np
import pytest

from sonic_rt import motion
from sonic_rt.config import GeometryParams
from sonic_rt.errors import IdentityCacheError
from sonic_rt.identity import Identity, IdentityStore, sha256_of
from sonic_rt.renderer import Renderer
from tests.conftest import png_bytes


class ExplodingAnalyzer:
    def analyze(self, image):
        raise AssertionError("face analysis ran although a cached identity existed")


def _same(a: Identity, b: Identity) -> None:
    for name in ("landmarks", "vertices", "triangles", "basis_pos", "basis_neg", "plate", "region", "palette"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.params, a.crop, a.roi, a.image_sha256) == (b.params, b.crop, b.roi, b.image_sha256)


def test_round_trip_renders_identically(tmp_path, astronaut_identity):
    path = tmp_path / "id.npz"
    astronaut_identity.save(path)
    loaded = Identity.load(path)
    _same(astronaut_identity, loaded)
    vec = motion.make(jaw_open=0.5, smile=0.4, blink_left=0.7, head_yaw=8.0)
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
