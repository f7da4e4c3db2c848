"""Errors a user can cause, each with a stable machine-readable code.

The server maps ``code`` to its protocol error codes and the CLI prints ``str(err)``;
both rely on every user-facing failure being one of these, never a bare ``Exception``.
"""

from __future__ import annotations


class SonicError(Exception):
    """Base of every error caused by the input rather than by a bug."""

    code = "error"


class PortraitError(SonicError):
    """The portrait cannot be used."""

    code = "bad_portrait"


class UnreadableImage(PortraitError):
    code = "unreadable_image"


class ImageTooLarge(PortraitError):
    code = "image_too_large"


class NoFace(PortraitError):
    code = "no_face"


class FaceTooSmall(PortraitError):
    code = "face_too_small"


class FaceCutOff(PortraitError):
    code = "face_cut_off"


class IdentityCacheError(SonicError):
    """A stored identity cache is missing, corrupt or was made for other parameters."""

    code = "bad_identity_cache"
