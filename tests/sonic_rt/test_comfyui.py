"""The ComfyUI nodes, called the way ComfyUI calls them, without ComfyUI installed."""

import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sonic_rt import audio
from sonic_rt.cli import main
from sonic_rt.comfyui import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    SPEECH_KEY,
    SonicRTPreData,
    SonicRTSampler,
    SonicRTSpeak,
)
from sonic_rt.errors import SonicError
from sonic_rt.measure import psnr
from sonic_rt.provenance.marks import Marks
from sonic_rt.provenance.watermark import detect
from tests.conftest import REPO, png_bytes, write_wav

SAMPLING = {"seed": 7, "inference_steps": 2, "dynamic_scale": 1.0, "motion_scale": 1.0, "fps": 25}


def comfy_image(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).float().div(255.0)[None]  # (1, H, W, 3) in [0, 1]


def comfy_audio(samples: np.ndarray, rate: int = 16000, channels: int = 1) -> dict:
    waveform = torch.from_numpy(np.tile(samples, (channels, 1)))[None]  # (1, C, T)
    return {"waveform": waveform, "sample_rate": rate}


def call(node_class, **inputs):
    node = node_class()
    return getattr(node, node_class.FUNCTION)(**inputs)


@pytest.fixture(scope="module")
def nodes_output(astronaut, sentence):
    (data,) = call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(sentence), min_resolution=256,
                   duration=0.0, expand_ratio=0.5, consent=True)  # fmt: skip
    return call(SonicRTSampler, portrait_and_audio=data, **SAMPLING)


def test_nodes_follow_comfyui_conventions():
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    for cls in NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert "required" in spec and isinstance(cls.RETURN_TYPES, tuple) and hasattr(cls, cls.FUNCTION)
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS) and cls.CATEGORY
        assert cls.DESCRIPTION and all(isinstance(tip, str) and tip for tip in cls.OUTPUT_TOOLTIPS)
        for name, (kind, *options) in {**spec["required"], **spec.get("optional", {})}.items():
            assert options and options[0].get("tooltip"), f"{cls.__name__}.{name} ({kind}) has no tooltip"
    assert SonicRTPreData.RETURN_TYPES[0] in {t[0] for t in SonicRTSampler.INPUT_TYPES()["required"].values()}
    pre = SonicRTPreData.INPUT_TYPES()["required"]
    assert {"image", "audio", "min_resolution", "duration", "expand_ratio"} <= set(pre)
    sampler = {**SonicRTSampler.INPUT_TYPES()["required"], **SonicRTSampler.INPUT_TYPES()["optional"]}
    assert {"seed", "inference_steps", "dynamic_scale", "motion_scale", "fps", "lip_sync_offset_ms"} <= set(sampler)


def test_the_custom_node_folder_imports_without_comfyui():
    code = "import comfyui_sonic_rt as m, sys; assert 'comfy' not in sys.modules; print(sorted(m.NODE_CLASS_MAPPINGS))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "SonicRTSampler" in out.stdout


def test_sampler_returns_bhwc_frames_audio_and_fps(nodes_output, sentence):
    images, sound, fps, watermark = nodes_output
    frames = -(-len(sentence) // audio.SAMPLES_PER_FRAME)
    assert images.shape == (frames, 256, 256, 3) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert fps == 25.0 and 0 <= watermark < 2**32
    assert detect(np.round(images.numpy() * 255).astype(np.uint8)).payload == watermark
    assert sound["sample_rate"] == 16000 and sound["waveform"].shape == (1, 1, frames * audio.SAMPLES_PER_FRAME)
    np.testing.assert_allclose(sound["waveform"][0, 0, : len(sentence)].numpy(), sentence, atol=1 / 32768)


def decoded_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_nodes_make_the_same_frames_as_the_cli(nodes_output, astronaut, sentence, tmp_path):
    portrait = tmp_path / "astronaut.png"
    portrait.write_bytes(png_bytes(astronaut))
    speech = write_wav(tmp_path / "speech.wav", sentence)
    out = tmp_path / "cli.mp4"
    args = ["generate", str(portrait), str(speech), "-o", str(out), "--min-resolution", "256", "--seed", "7"]
    args += ["--crf", "0", "--consent"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cli = decoded_frames(out)
    payload = detect(cli).payload  # the same watermark, so the same frames
    assert payload is not None
    (data,) = call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(sentence), min_resolution=256,
                   duration=0.0, expand_ratio=0.5, consent=True)  # fmt: skip
    nodes = call(SonicRTSampler, portrait_and_audio=data, **SAMPLING, watermark=payload)[0]
    nodes = np.round(nodes.numpy() * 255).astype(np.uint8)
    assert detect(nodes).payload == payload
    assert cli.shape == nodes.shape
    same = [psnr(a, b) for a, b in zip(cli, nodes, strict=True)]
    assert min(same) > 40  # the same frames, up to H.264's 4:2:0 chroma
    (data,) = call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(sentence), min_resolution=256,
                   duration=0.0, expand_ratio=0.5, consent=True)  # fmt: skip
    other = call(SonicRTSampler, portrait_and_audio=data, **{**SAMPLING, "seed": 8}, watermark=payload)[0]
    other = np.round(other.numpy() * 255).astype(np.uint8)
    assert np.median([psnr(a, b) for a, b in zip(cli, other, strict=True)]) < np.median(same) - 3


def test_audio_at_another_rate_and_in_stereo_is_resampled(astronaut, sentence):
    t = np.arange(round(len(sentence) * 44100 / 16000)) * (16000 / 44100)
    stereo = np.interp(t, np.arange(len(sentence)), sentence).astype(np.float32)
    (data,) = call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(stereo, 44100, 2),
                   min_resolution=128, duration=0.0, expand_ratio=0.5, consent=True)  # fmt: skip
    assert abs(len(data.samples) - len(sentence)) <= 16


def test_bad_inputs_raise_their_errors(astronaut, sentence):
    flat = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(SonicError) as info:
        call(SonicRTPreData, image=comfy_image(flat), audio=comfy_audio(sentence), min_resolution=256, duration=0.0,
             expand_ratio=0.5, consent=True)  # fmt: skip
    assert info.value.code == "no_face"
    with pytest.raises(SonicError) as info:
        call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(np.zeros(16000, np.float32)),
             min_resolution=256, duration=0.0, expand_ratio=0.5, consent=True)  # fmt: skip
    assert info.value.code == "silent_audio"
    with pytest.raises(SonicError) as info:
        call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(sentence), min_resolution=256,
             duration=9.0, expand_ratio=0.5, consent=True)  # fmt: skip
    assert info.value.code == "duration_mismatch"
    with pytest.raises(SonicError) as info:
        call(SonicRTPreData, image=comfy_image(astronaut), audio={"samples": 1}, min_resolution=256, duration=0.0,
             expand_ratio=0.5, consent=True)  # fmt: skip
    assert info.value.code == "bad_audio_chunk"


def test_a_portrait_needs_consent(astronaut, sentence):
    with pytest.raises(SonicError) as info:
        call(SonicRTPreData, image=comfy_image(astronaut), audio=comfy_audio(sentence), min_resolution=256,
             duration=0.0, expand_ratio=0.5)  # fmt: skip
    assert info.value.code == "consent_required"
    assert "consent" in SonicRTPreData.INPUT_TYPES()["required"]


def test_a_random_watermark_makes_the_sampler_run_again_and_a_fixed_one_lets_comfyui_reuse_it():
    fresh = SonicRTSampler.IS_CHANGED(watermark=-1, seed=7)
    assert fresh != fresh  # NaN: never equal to an earlier run's value, so ComfyUI runs the node again
    assert SonicRTSampler.IS_CHANGED(seed=7) != SonicRTSampler.IS_CHANGED(seed=7)  # watermark linked or default
    assert SonicRTSampler.IS_CHANGED(watermark=1234, seed=7) == SonicRTSampler.IS_CHANGED(watermark=1234, seed=8)


def test_speak_hands_its_phonemes_to_the_sampler(astronaut):
    (speech,) = call(SonicRTSpeak, text="Hello there, and welcome to the show.", voice="en-us", rate=175, pitch=50)
    assert speech["sample_rate"] == 16000 and speech["waveform"].shape[:2] == (1, 1)
    pre = {"image": comfy_image(astronaut), "min_resolution": 128, "duration": 0.0, "expand_ratio": 0.5,
           "consent": True}  # fmt: skip
    (spoken,) = call(SonicRTPreData, audio=speech, **pre)
    assert spoken.speech is speech[SPEECH_KEY] and spoken.source is speech[SPEECH_KEY]
    quieter = {**speech, "waveform": speech["waveform"] * 0.5}  # another node changed the sound, kept the key
    (changed,) = call(SonicRTPreData, audio=quieter, **pre)
    assert changed.speech is None and isinstance(changed.source, np.ndarray)
    (plain,) = call(SonicRTPreData, audio={"waveform": speech["waveform"], "sample_rate": 16000}, **pre)
    assert plain.speech is None
    with_phonemes = call(SonicRTSampler, portrait_and_audio=spoken, **SAMPLING, watermark=5)[0]
    recognised = call(SonicRTSampler, portrait_and_audio=plain, **SAMPLING, watermark=5)[0]
    assert with_phonemes.shape == recognised.shape
    assert float((with_phonemes - recognised).abs().max()) > 0.1  # the mouth follows espeak's phonemes, not a guess
    from sonic_rt.offline import prepare

    job = prepare(spoken.identity, speech[SPEECH_KEY], spoken_params(spoken), Marks(5))
    direct = torch.cat([torch.from_numpy(np.stack([f.image for f in c.frames])) for c in job.chunks() if c.frames])
    assert torch.equal(direct.float().div(255.0), with_phonemes)


def spoken_params(data):
    from sonic_rt.comfyui import _job_params

    return _job_params(data, **SAMPLING)


def test_speak_refuses_bad_text_and_voices():
    with pytest.raises(SonicError) as info:
        call(SonicRTSpeak, text="  ", voice="en-us")
    assert info.value.code == "empty_text"
    with pytest.raises(SonicError) as info:
        call(SonicRTSpeak, text="Hello", voice="xx-nowhere")
    assert info.value.code == "unknown_voice"


def test_the_sampler_takes_the_audios_timings(astronaut, sentence):
    import json

    pre = {"image": comfy_image(astronaut), "min_resolution": 128, "duration": 0.0, "expand_ratio": 0.5,
           "consent": True}  # fmt: skip
    (data,) = call(SonicRTPreData, audio=comfy_audio(sentence), **pre)
    n = len(sentence) * 1000 // 16000
    closed = json.dumps({"format": "arpabet", "marks": [{"phone": "M", "start_ms": 0, "end_ms": n}]})
    timed = call(SonicRTSampler, portrait_and_audio=data, **SAMPLING, watermark=5, phonemes=closed)[0]
    recognised = call(SonicRTSampler, portrait_and_audio=data, **SAMPLING, watermark=5)[0]
    assert float((timed - recognised).abs().max()) > 0.1  # the mouth follows the timings
    late = json.dumps({"format": "arpabet", "marks": [{"phone": "M", "start_ms": 0, "end_ms": n + 900}]})
    with pytest.raises(SonicError, match="past the end") as err:
        call(SonicRTSampler, portrait_and_audio=data, **SAMPLING, watermark=5, phonemes=late)
    assert err.value.code == "bad_timings"
