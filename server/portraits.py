"""The server's enrolled portraits: each one's identity cache, and what the audit log says of it
(its id, its image's hash, the consent it came with). Enrolment runs in a job process or here."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sonic_rt.config import GeometryParams
from sonic_rt.errors import ConsentRequired, SonicError
from sonic_rt.face.samples import PREFIX, SAMPLES, load_sample
from sonic_rt.provenance.audit import SAMPLE_CONSENT
from sonic_rt.render.identity import Identity, cache_key, enroll_cached, sha256_of


class UnknownPortrait(SonicError):
    code = "unknown_portrait"



@dataclass(frozen=True)
class Enrolled:
    """An enrolled portrait and what the audit log says of it: its id, its image's hash, its consent."""

    id: str
    identity: Identity
    consent: str  # the uploader's attestation, or SAMPLE_CONSENT for a built-in sample

    @property
    def sha256(self) -> str:
        return self.identity.image_sha256


class Portraits:
    """Enrolled portraits by id (``sample:NAME`` ids enrol on first use); thread-safe."""

    def __init__(self, enroller, limit: int, directory: Path | None) -> None:
        """``enroller(source, geometry, directory)``: the ``Identity`` of encoded image bytes or an
        RGB array (through the identity store in ``directory``, if any): in a job process
        (``Jobs.enroll``), or here (``local_enroller``)."""
        self._enroller = enroller
        self._limit = limit
        self._directory = directory
        self._cache: OrderedDict[str, Enrolled] = OrderedDict()
        self._lock = threading.Lock()

    def enroll(self, image: bytes | str, geometry: GeometryParams, consent: str | None = None) -> Enrolled:
        """Enrol encoded image bytes (with the uploader's ``consent`` attestation) or ``sample:NAME``;
        the same image and geometry get the same id."""
        if isinstance(image, str):
            if image[len(PREFIX) :] not in SAMPLES:
                raise UnknownPortrait(f"unknown sample {image!r}; samples: {', '.join(PREFIX + n for n in SAMPLES)}")
            key, consent = f"{image}-e{geometry.expand_ratio:g}-r{geometry.min_resolution}", SAMPLE_CONSENT
        elif not consent:
            raise ConsentRequired("an uploaded portrait is only enrolled with its uploader's consent attestation")
        else:
            key = cache_key(sha256_of(image), geometry)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        # not under the lock: an enrolment may wait for a job process while sessions look up theirs
        source = load_sample(image) if isinstance(image, str) else image  # a sample is decoded only now (0.5 s of CPU)
        identity = self._enroller(source, geometry, self._directory)
        with self._lock:
            self._cache[key] = enrolled = Enrolled(key, identity, consent)
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return enrolled

    def lookup(self, portrait_id: str) -> Enrolled:
        if portrait_id.startswith(PREFIX) and "-e" not in portrait_id:
            return self.enroll(portrait_id, GeometryParams())
        with self._lock:
            enrolled = self._cache.get(portrait_id)
        if enrolled is None:
            raise UnknownPortrait(f"no portrait {portrait_id!r}: enrol it first with POST /v1/portraits")
        return enrolled

    def get(self, portrait_id: str) -> Identity:
        return self.lookup(portrait_id).identity


def local_enroller(analyzer):
    """An enroller for ``Portraits`` that enrols in this process with ``analyzer``."""

    return functools.partial(_enroll_here, analyzer=analyzer)


def _enroll_here(source, geometry: GeometryParams, directory: Path | None, analyzer) -> Identity:
    return enroll_cached(source, geometry, analyzer, directory)
