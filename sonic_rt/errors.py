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


class AudioError(SonicError):
    """The audio cannot be used."""

    code = "bad_audio"


class UnreadableAudio(AudioError):
    code = "unreadable_audio"


class NoAudioStream(AudioError):
    code = "no_audio_stream"


class EmptyAudio(AudioError):
    code = "empty_audio"


class BadSampleRate(AudioError):
    code = "bad_sample_rate"


class BadChannelCount(AudioError):
    code = "bad_channel_count"


class BadAudioChunk(AudioError):
    code = "bad_audio_chunk"


class SilentAudio(AudioError):
    code = "silent_audio"


class AudioTooLong(AudioError):
    code = "audio_too_long"


class DurationMismatch(AudioError):
    code = "duration_mismatch"


class SpeechError(SonicError):
    """Text cannot be turned into speech."""

    code = "bad_speech_request"


class TTSUnavailable(SpeechError):
    code = "tts_unavailable"


class EmptyText(SpeechError):
    code = "empty_text"


class UnknownVoice(SpeechError):
    code = "unknown_voice"


class BadSpeechParameter(SpeechError):
    code = "bad_speech_parameter"


class OutputError(SonicError):
    """The result cannot be written where it was asked for."""

    code = "unwritable_output"


class UnreadableVideo(SonicError):
    """A video file that cannot be opened or decoded (the watermark detector's input)."""

    code = "unreadable_video"


class ConsentRequired(SonicError):
    """A user's portrait is only animated with the uploader's consent attestation."""

    code = "consent_required"


class AuditError(SonicError):
    """The audit log cannot be opened or written; nothing is generated without it."""

    code = "audit_log"


class AuditKeyMissing(AuditError):
    code = "audit_key_missing"


class AuditKeyMismatch(AuditError):
    code = "audit_key_mismatch"
