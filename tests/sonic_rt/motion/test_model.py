import numpy as np
import pytest
import torch

from sonic_rt import audio
from sonic_rt.audio import phonetic
from sonic_rt.motion import vector
from sonic_rt.motion.model import MotionDenoiser
from sonic_rt.motion.sampler import make_scheduler, sample_window


@pytest.fixture(scope="module")
def tiny() -> MotionDenoiser:
    torch.manual_seed(0)
    model = MotionDenoiser(d_model=32, n_layers=1, n_heads=2, d_ff=64, audio_dim=16, window=8).eval()
    with torch.no_grad():  # a non-zero head, so outputs depend on inputs
        model.head.weight.normal_(std=0.1)
    return model


def contexts(model: MotionDenoiser, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    w = model.config.window
    mel = torch.randn(batch, w, model.mel_span, audio.N_MELS)
    phones = torch.rand(batch, w, model.phone_span, phonetic.FEATURES)
    return mel, phones


def inputs(model: MotionDenoiser, batch: int = 1):
    w = model.config.window
    return model.embed_audio(*contexts(model, batch)), torch.zeros(batch, w, vector.DIM), torch.zeros(batch, w, 1)


def test_shapes_and_lookahead(tiny):
    emb, known, mask = inputs(tiny, batch=3)
    out = tiny(torch.randn(3, tiny.config.window, vector.DIM), torch.tensor([1, 500, 999]), emb, known, mask)
    assert out.shape == (3, tiny.config.window, vector.DIM)
    assert tiny.mel_span == 8 + 4 + 12
    assert tiny.phone_span == 16 + 4 + 4
    # the recogniser gives a row out 80 ms after its audio, and the model reads 40 ms of rows ahead
    assert tiny.lookahead_ms == 120


@pytest.mark.parametrize("inputs_read", ["mel", "phones"])
def test_an_ablation_reads_only_its_input(inputs_read):
    torch.manual_seed(0)
    model = MotionDenoiser(
        d_model=32, n_layers=1, n_heads=2, d_ff=64, audio_dim=16, window=8, inputs=inputs_read
    ).eval()
    mel, phones = contexts(model)
    with torch.inference_mode():
        base = model.embed_audio(mel, phones)
        other_mel = model.embed_audio(mel + 1.0, phones)
        other_phones = model.embed_audio(mel, phones + 1.0)
    assert torch.equal(base, other_phones) == (inputs_read == "mel")
    assert torch.equal(base, other_mel) == (inputs_read == "phones")


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="inputs"):
        MotionDenoiser(inputs="loudness")


def test_save_and_load_round_trip_with_statistics(tiny, tmp_path):
    tiny.motion_std.fill_(2.0)
    tiny.save_pretrained(str(tmp_path))
    assert (tmp_path / "config.json").is_file()
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = MotionDenoiser.from_pretrained(str(tmp_path), local_files_only=True).eval()
    assert loaded.config.window == tiny.config.window
    torch.testing.assert_close(loaded.motion_std, tiny.motion_std)
    emb, known, mask = inputs(tiny)
    x, t = torch.randn(1, tiny.config.window, vector.DIM), torch.tensor([10])
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x, t, emb, known, mask), tiny(x, t, emb, known, mask))


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_sampling_is_reproducible_for_a_seed(tiny, guidance):
    with torch.inference_mode():
        emb, known, mask = inputs(tiny)

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample_window(tiny, make_scheduler(), emb, known, mask, 4, guidance, gen)

    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.equal(run(1), run(2))


def test_step_count_is_checked(tiny):
    emb, known, mask = inputs(tiny)
    with pytest.raises(ValueError, match="inference_steps"):
        sample_window(tiny, make_scheduler(), emb, known, mask, 0, 1.0, torch.Generator())


def test_classifier_free_guidance_extrapolates_from_the_unconditional_branch(tiny):
    with torch.inference_mode():
        emb, known, mask = inputs(tiny)
        outs = {}
        for g in (0.0, 1.0, 3.0):
            gen = torch.Generator().manual_seed(0)
            outs[g] = sample_window(tiny, make_scheduler(), emb, known, mask, 1, g, gen)
    # with one step the sample is the guided prediction: linear in the guidance scale
    torch.testing.assert_close(outs[3.0] - outs[0.0], 3 * (outs[1.0] - outs[0.0]), rtol=1e-4, atol=1e-5)
    assert np.abs((outs[1.0] - outs[0.0]).numpy()).max() > 1e-4


def test_traced_inference_matches_the_network(tiny):
    emb, known, mask = inputs(tiny, batch=2)
    x, t = torch.randn(2, tiny.config.window, vector.DIM), torch.tensor([3, 700])
    with torch.inference_mode():
        torch.testing.assert_close(tiny.denoise(x, t, emb, known, mask), tiny(x, t, emb, known, mask))
        assert tuple(x.shape) in tiny._traced
    tiny.train()
    assert not tiny._traced
    tiny.eval()


def test_a_model_without_known_mouth_ignores_the_previous_windows_mouth():
    torch.manual_seed(0)
    model = MotionDenoiser(d_model=32, n_layers=1, n_heads=2, d_ff=64, audio_dim=16, window=8, known_mouth=False)
    model.eval()
    with torch.no_grad():
        model.head.weight.normal_(std=0.1)
    emb, _, _ = inputs(model)
    mask = torch.ones(1, 8, 1)
    known = torch.randn(1, 8, vector.DIM)
    other = known.clone()
    other[..., vector.INDEX["jaw_open"]] += 1.0
    x, t = torch.randn(1, 8, vector.DIM), torch.tensor([100])
    with torch.inference_mode():
        torch.testing.assert_close(model(x, t, emb, known, mask), model(x, t, emb, other, mask))
        other[..., vector.INDEX["head_yaw"]] += 1.0
        assert not torch.allclose(model(x, t, emb, known, mask), model(x, t, emb, other, mask))
