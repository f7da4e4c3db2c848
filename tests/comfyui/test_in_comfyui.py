"""sonic-rt's nodes inside a real ComfyUI (the snapshot in ../shared/comfyui), driven over loopback
the way its frontend drives it: files uploaded, workflows POSTed to /prompt, progress read on /ws,
results from /history, the MP4 that the core SaveVideo node writes read back."""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, SonicRTSampler
from sonic_rt.provenance.watermark import detect
from tests.comfyui.conftest import PRESETS, WORKFLOWS, api_workflow, node_of
from tests.conftest import REPO, write_wav

ARTIFACTS = REPO / "test-artifacts" / "comfyui"
RESOLUTION = {"quick": 512, "high_quality": 1024}
FAST = 256  # px, where the preset is not the point
AAC_FRAME = 1024  # samples: decoded AAC ends on a whole frame


@dataclass
class Video:
    codec: str
    size: tuple[int, int]
    frames: list[np.ndarray]
    fps: float
    audio_codec: str | None
    sound: np.ndarray  # mono float32 at audio_rate
    audio_rate: int

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


def read_mp4(path: Path) -> Video:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, size, fps = stream.codec_context.name, (stream.width, stream.height), float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return Video(codec, size, frames, fps, None, np.zeros(0, np.float32), 0)
        sound_stream = container.streams.audio[0]
        rate, audio_codec = sound_stream.rate, sound_stream.codec_context.name
        pieces = [f.to_ndarray().astype(np.float32).reshape(f.layout.nb_channels if f.format.is_planar else 1, -1)
                  .mean(axis=0) for f in container.decode(audio=0)]  # fmt: skip
    return Video(codec, size, frames, fps, audio_codec, np.concatenate(pieces), rate)


def with_inputs(prompt: dict, class_type: str, **inputs) -> dict:
    node_of(prompt, class_type)["inputs"].update(inputs)
    return prompt


def consented(name: str, **pre) -> dict:
    return with_inputs(api_workflow(name), "SonicRTPreData", consent=True, **pre)


def sampler_id(prompt: dict) -> str:
    return next(k for k, n in prompt.items() if n["class_type"] == "SonicRTSampler")


def the_mp4(comfyui, entry: dict) -> Path:
    (mp4,) = [f for f in comfyui.output_files(entry) if f.suffix == ".mp4"]
    return mp4


def reported_watermark(prompt: dict, entry: dict) -> int:
    """The payload the sampler reports, as the presets' Preview Any node shows it."""
    (preview,) = [k for k, n in prompt.items() if n["class_type"] == "PreviewAny"]
    return int(entry["outputs"][preview]["text"][0])


def succeeded(entry: dict) -> bool:
    return entry["status"]["status_str"] == "success" and entry["status"]["completed"]


def frames_for(samples: int, fps: int = 25) -> int:
    return math.ceil(samples * fps / audio.SAMPLE_RATE)


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_makes_an_mp4_of_the_audios_length_with_its_sound(comfyui, analyzer, sentence, name):
    prompt = consented(name)  # as shipped, with consent given; the speech is the test's short sentence
    t0 = time.perf_counter()
    prompt_id = comfyui.queue(prompt)
    entry = comfyui.wait(prompt_id)
    wall = time.perf_counter() - t0
    assert succeeded(entry), entry["status"]
    video = read_mp4(the_mp4(comfyui, entry))
    frames = frames_for(len(sentence))
    assert video.codec == "h264" and video.size == (RESOLUTION[name],) * 2 and video.fps == 25
    assert len(video.frames) == frames
    assert abs(video.seconds - len(sentence) / audio.SAMPLE_RATE) <= 1 / 25  # duration = the audio's
    assert video.audio_codec == "aac"
    assert abs(len(video.sound) / video.audio_rate - video.seconds) <= AAC_FRAME / video.audio_rate + 0.005
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
    assert rms(video.sound) > 0.3 * rms(sentence)  # the speech is there, not silence
    analyzer.analyze(video.frames[len(video.frames) // 2])  # a face (raises NoFace otherwise)
    assert 0 <= reported_watermark(prompt, entry) < 2**32
    progress = [m["data"] for m in comfyui.messages(prompt_id, "progress") if m["data"]["node"] == sampler_id(prompt)]
    values = [p["value"] for p in progress]
    assert len(values) >= 3 and values == sorted(values) and values[-1] == frames
    assert {p["max"] for p in progress} == {frames}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(video.frames[len(video.frames) // 2]).save(ARTIFACTS / f"{name}.png")
    print(f"{name}: {len(video.frames)} frames at {video.size[0]} px in {wall:.2f} s (POST to /history)")


def test_object_info_describes_every_input_with_a_tooltip_as_core_nodes_do(comfyui):
    info = comfyui.http.get("/object_info").json()
    for name, cls in NODE_CLASS_MAPPINGS.items():
        node = info[name]
        assert node["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[name] and node["category"] == "sonic-rt"
        assert node["description"] and node["output_name"] == list(cls.RETURN_NAMES)
        assert len(node["output_tooltips"]) == len(cls.RETURN_TYPES) and all(node["output_tooltips"])
        for section in ("required", "optional"):
            for input_name, spec in node["input"].get(section, {}).items():
                assert len(spec) == 2 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
    ours = info["SonicRTSampler"]["input"]["required"]["seed"][1]
    core = info["KSampler"]["input"]["required"]["seed"][1]
    assert ours["control_after_generate"] is core["control_after_generate"] is True
    assert ours["min"] == core["min"] == 0 and 2**50 <= ours["max"] <= core["max"]  # the frontend randomises < 2^50
    pre = info["SonicRTPreData"]["input"]["required"]
    assert pre["image"][0] == info["LoadImage"]["output"][0] and pre["audio"][0] == info["LoadAudio"]["output"][0]
    create = {**info["CreateVideo"]["input"]["required"], **info["CreateVideo"]["input"]["optional"]}
    outputs = dict(zip(info["SonicRTSampler"]["output_name"], info["SonicRTSampler"]["output"], strict=True))
    assert (create["images"][0], create["audio"][0], create["fps"][0]) == (
        outputs["frames"], outputs["audio"], outputs["fps"])  # fmt: skip
    assert info["SonicRTSpeak"]["output"] == [info["LoadAudio"]["output"][0]]


def test_an_out_of_range_input_is_refused_by_comfyuis_own_validation(comfyui):
    too_many = with_inputs(consented("quick"), "SonicRTSampler", inference_steps=51)
    reply = comfyui.post_prompt(too_many)
    assert reply.status_code == 400
    errors = reply.json()["node_errors"][sampler_id(too_many)]["errors"]
    assert [e["type"] for e in errors] == ["value_bigger_than_max"] and "inference_steps" in errors[0]["details"]
    too_small = consented("quick", min_resolution=64)
    reply = comfyui.post_prompt(too_small)
    assert reply.status_code == 400
    (pre_id,) = [k for k, n in too_small.items() if n["class_type"] == "SonicRTPreData"]
    assert [e["type"] for e in reply.json()["node_errors"][pre_id]["errors"]] == ["value_smaller_than_min"]


def test_a_portrait_without_consent_comes_back_as_an_execution_error_with_our_message(comfyui):
    prompt = api_workflow("quick")  # as shipped: a preset cannot consent for its user
    assert node_of(prompt, "SonicRTPreData")["inputs"]["consent"] is False
    prompt_id = comfyui.queue(prompt)
    entry = comfyui.wait(prompt_id)
    assert entry["status"]["status_str"] == "error"
    (error,) = comfyui.messages(prompt_id, "execution_error")
    data = error["data"]
    assert data["node_type"] == "SonicRTPreData" and data["exception_type"].endswith("ConsentRequired")
    assert "only animated with consent" in data["exception_message"]
    assert not comfyui.output_files(entry)


def test_interrupting_stops_the_sampler_within_a_few_frames(comfyui, sentence):
    long_speech = np.tile(sentence, 15)  # about 40 s: minutes of work at this step count
    comfyui.upload("long.wav", write_wav(Path(comfyui.server.base) / "long.wav", long_speech).read_bytes())
    prompt = consented("quick", min_resolution=FAST)
    with_inputs(prompt, "LoadAudio", audio="long.wav")
    with_inputs(prompt, "SonicRTSampler", inference_steps=8, watermark=11)
    node = sampler_id(prompt)
    prompt_id = comfyui.queue(prompt)
    started = comfyui.wait_message(prompt_id, lambda m: m["type"] == "progress" and m["data"]["node"] == node
                                   and m["data"]["value"] >= 10)  # fmt: skip
    comfyui.http.post("/interrupt").raise_for_status()
    asked = time.perf_counter()
    entry = comfyui.wait(prompt_id, timeout=60)
    stopped_s = time.perf_counter() - asked
    (interrupted,) = comfyui.messages(prompt_id, "execution_interrupted")
    assert interrupted["data"]["node_type"] == "SonicRTSampler"
    assert entry["status"]["status_str"] == "error" and not comfyui.output_files(entry)
    values = [m["data"]["value"] for m in comfyui.messages(prompt_id, "progress") if m["data"]["node"] == node]
    total = frames_for(len(long_speech))
    at_interrupt = max(v for m, v in zip(comfyui.messages(prompt_id, "progress"), values, strict=False)
                       if m["at"] <= asked) if values else 0  # fmt: skip
    assert started["data"]["max"] == total
    assert values[-1] - at_interrupt <= 16, (at_interrupt, values[-1])  # a few 5-frame chunks at most
    assert values[-1] < total / 4 and stopped_s < 10


def test_a_fixed_watermark_is_reused_from_comfyuis_cache_and_a_random_one_runs_afresh(comfyui):
    fixed = with_inputs(consented("quick", min_resolution=FAST), "SonicRTSampler", watermark=1234)
    node = sampler_id(fixed)
    first = comfyui.wait(comfyui.queue(fixed))
    again_id = comfyui.queue(fixed)
    again = comfyui.wait(again_id)
    assert succeeded(first) and succeeded(again)
    (cached,) = comfyui.messages(again_id, "execution_cached")
    assert node in cached["data"]["nodes"]  # the same payload: the same frames, taken from the cache
    assert not [m for m in comfyui.messages(again_id, "executing") if m["data"]["node"] == node]
    assert reported_watermark(fixed, first) == reported_watermark(fixed, again) == 1234
    assert detect(read_mp4(the_mp4(comfyui, first)).frames).payload == 1234
    fresh = with_inputs(consented("quick", min_resolution=FAST), "SonicRTSampler", watermark=-1)
    runs = []
    for _ in range(2):
        prompt_id = comfyui.queue(fresh)
        entry = comfyui.wait(prompt_id)
        assert succeeded(entry)
        (cached,) = comfyui.messages(prompt_id, "execution_cached")
        assert node not in cached["data"]["nodes"]  # IS_CHANGED: the sampler runs again
        runs.append(reported_watermark(fresh, entry))
    assert runs[0] != runs[1]  # each video its own random payload


def test_speak_makes_a_talking_video_from_text_alone(comfyui):
    from sonic_rt.audio.tts import synthesize

    text = "Good morning. This portrait speaks text."
    prompt = consented("quick", min_resolution=FAST)
    loader = next(k for k, n in prompt.items() if n["class_type"] == "LoadAudio")
    prompt[loader] = {"class_type": "SonicRTSpeak", "inputs": {"text": text, "voice": "en-us+f3", "rate": 175,
                                                               "pitch": 50}}  # fmt: skip
    prompt_id = comfyui.queue(prompt)
    entry = comfyui.wait(prompt_id)
    assert succeeded(entry), comfyui.messages(prompt_id, "execution_error")
    video = read_mp4(the_mp4(comfyui, entry))
    spoken = synthesize(text, "en-us+f3")
    assert len(video.frames) == frames_for(len(spoken.audio))
    bad = {**prompt, loader: {**prompt[loader], "inputs": {**prompt[loader]["inputs"], "voice": "xx-nowhere"}}}
    bad_id = comfyui.queue(bad)
    comfyui.wait(bad_id)
    (error,) = comfyui.messages(bad_id, "execution_error")
    assert error["data"]["node_type"] == "SonicRTSpeak" and "xx-nowhere" in error["data"]["exception_message"]


def test_the_presets_are_in_comfyuis_template_browser(comfyui):
    templates = comfyui.http.get("/api/workflow_templates").json()
    assert sorted(templates["sonic-rt"]) == sorted(PRESETS)
    for name in PRESETS:
        served = comfyui.http.get(f"/api/workflow_templates/sonic-rt/{name}.json")
        assert served.status_code == 200 and served.json() == json.loads((WORKFLOWS / f"{name}.json").read_text())


def test_the_node_pack_loads_and_its_pyproject_reads_with_comfyuis_own_parser(comfyui, comfyui_build):
    log = comfyui.server.log.read_text()
    assert "Unable to parse pyproject.toml" not in log and "IMPORT FAILED" not in log
    code = ("import sys; from comfy_config import config_parser; "
            "print(config_parser.extract_node_configuration(sys.argv[1]).model_dump_json(by_alias=True))")  # fmt: skip
    linked = comfyui.server.base / "custom_nodes" / "sonic-rt"
    out = subprocess.run([str(comfyui_build.python), "-c", code, str(linked)], cwd=comfyui_build.comfyui,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    config = json.loads(out)
    comfy, project = config["tool_comfy"], config["project"]
    assert comfy["PublisherId"] and comfy["DisplayName"] == "sonic-rt" and comfy["Icon"]
    assert (WORKFLOWS.parent / comfy["Icon"]).is_file()
    assert project["name"] == "sonic-rt" and project["version"] and project["dependencies"] == ["sonic-rt"]
    assert project["supported_comfyui_version"]
    requirements = (WORKFLOWS.parent / "requirements.txt").read_text().split()
    assert requirements == project["dependencies"]


def test_sampler_widgets_match_the_class(comfyui):
    """What the frontend draws is what the class declares (ComfyUI reads INPUT_TYPES itself)."""
    info = comfyui.http.get("/object_info/SonicRTSampler").json()["SonicRTSampler"]["input"]
    declared = SonicRTSampler.INPUT_TYPES()
    assert list(info["required"]) == list(declared["required"]) and list(info["optional"]) == list(declared["optional"])
