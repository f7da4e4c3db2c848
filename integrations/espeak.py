"""The phonemes sonic-rt's embedded text-to-speech (espeak-ng) speaks, as timings an adapter passes on.

A TTS wrapper that speaks with ``sonic_rt.audio.tts`` knows exactly which phoneme is spoken when;
``espeak_timings`` writes them as the protocol's ``timings`` (format ``espeak``), for the first
chunk of the utterance's audio to carry (``metadata["sonic_rt.timings"]`` in pipecat,
``userdata["sonic_rt.timings"]`` in LiveKit).
"""

from __future__ import annotations

from sonic_rt.audio import tts


def espeak_timings(speech: tts.Speech) -> dict:
    """``speech``'s phonemes as ``sonic_rt.audio.timings`` marks (format ``espeak``): its pauses too,
    and one from its start to the first phoneme, so that they cover all of its audio."""
    phonemes = list(speech.phonemes)
    if phonemes and phonemes[0].start > 0:
        phonemes.insert(0, tts.Phoneme("_", 0.0, phonemes[0].start))
    marks = [{"phone": p.symbol, "start_ms": round(p.start * 1e3, 3), "end_ms": round(p.end * 1e3, 3)}
             for p in phonemes]  # fmt: skip
    return {"format": "espeak", "marks": marks}
