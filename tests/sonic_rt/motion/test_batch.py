"""Model calls of many sessions as one batch: the same results as one at a time, whoever shares a batch."""

import threading
import time

import numpy as np
import pytest
import torch

from sonic_rt import audio
from sonic_rt.audio.features import log_mel
from sonic_rt.audio.phonetic import encode
from sonic_rt.audio.recognizer import recognize
from sonic_rt.config import MotionParams
from sonic_rt.motion.batch import BatchRunner, DirectRunner, RunnerClosed, default_device, make_runner
from sonic_rt.motion.model import MotionDenoiser
from sonic_rt.motion.stream import MotionStream

GATE = 1e6  # a context starting with this value holds the worker until the test opens the gate


class Gated(MotionDenoiser):
    """A small random denoiser whose ``embed_audio`` can be held (``GATE``) or made to fail (NaN input)."""

    gate = threading.Event()
    held = threading.Event()  # the worker waits at the gate

    def embed_audio(self, mel_context, phone_context):
        if mel_context.flatten()[0] == GATE:
            self.held.set()
            assert self.gate.wait(10)
        if torch.isnan(mel_context).any():
            raise ValueError("nan in the mel")
        return super().embed_audio(mel_context, phone_context)


@pytest.fixture(scope="module")
def model() -> Gated:
    torch.manual_seed(0)
    net = Gated(
        window=6,
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ff=64,
        audio_dim=16,
        mel_past=2,
        mel_future=2,
        phone_past=2,
        phone_future=2,
    ).eval()
    torch.nn.init.normal_(net.head.weight, std=0.5)  # trained weights would not predict all zeros either
    return net


@pytest.fixture
def runner(model):
    Gated.gate.clear()
    Gated.held.clear()
    runner = BatchRunner(model, max_batch=8, max_wait_ms=100)
    yield runner
    Gated.gate.set()
    runner.close()


def contexts(model, n, seed):
    """Inputs of one ``embed`` call: mel and phonetic contexts."""
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn((n, model.mel_span, audio.N_MELS), generator=g)
    return mel, torch.rand((n, model.phone_span, model.config.phone_features), generator=g)


def window(model, seed):
    """Inputs of one ``sample`` call: audio_emb, known, known_mask, noise."""
    g = torch.Generator().manual_seed(seed)
    w, d = model.config.window, model.config.motion_dim
    mask = torch.zeros(1, w, 1)
    mask[:, : w // 2] = 1.0
    emb = torch.randn((1, w, model.config.audio_dim), generator=g)
    return emb, torch.randn((1, w, d), generator=g) * mask, mask, torch.randn((1, w, d), generator=g)


def in_threads(*calls):
    """Run each call on a thread of its own; their results (or exceptions), in order."""
    out = [None] * len(calls)

    def run(i):
        try:
            out[i] = calls[i]()
        except Exception as err:
            out[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    return threads, out


def held(runner, queued):
    """Hold the worker on a gated call, let ``queued`` calls queue up behind it, then open the gate."""
    gate = contexts(runner.model, 1, 0)
    gate[0].view(-1)[0] = GATE
    first, _ = in_threads(lambda: runner.embed(*gate))
    assert Gated.held.wait(10)
    threads, out = in_threads(*queued)
    deadline = time.monotonic() + 10
    while runner._queue.qsize() < len(queued) and time.monotonic() < deadline:
        time.sleep(0.001)
    Gated.gate.set()
    for t in first + threads:
        t.join(10)
    return out


def test_make_runner_picks_the_implementation(model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    direct = make_runner(model, batched=False)
    assert isinstance(direct, DirectRunner) and direct.device.type == "cpu" and direct.model is model
    batched = make_runner(model, batched=True, max_wait_ms=1)
    try:
        assert isinstance(batched, BatchRunner) and batched.model is model and batched.max_wait == 0.001
    finally:
        batched.close()


def test_a_batch_of_one_is_a_direct_call(model, runner):
    direct = DirectRunner(model)
    c = contexts(model, 1, 1)
    assert torch.equal(runner.embed(*c), direct.embed(*c))
    inputs = window(model, 2)
    assert torch.equal(runner.sample(*inputs, 2, 2.0), direct.sample(*inputs, 2, 2.0))
    assert runner.batches == 2 and runner.items == 2


def test_concurrent_calls_form_batches_and_match_direct_calls(model, runner):
    direct = DirectRunner(model)
    n, rounds = 4, 5
    barrier = threading.Barrier(n)
    got = {}

    def session(i):
        for r in range(rounds):
            barrier.wait()
            c, w = contexts(model, 1 + i % 2, 10 * i + r), window(model, 10 * i + r)
            got[i, r] = (c, w, runner.embed(*c), runner.sample(*w, 2, 2.0))

    threads, errors = in_threads(*(lambda i=i: session(i) for i in range(n)))
    for t in threads:
        t.join(30)
    assert errors == [None] * n and len(got) == n * rounds
    for c, w, emb, x in got.values():
        torch.testing.assert_close(emb, direct.embed(*c), rtol=0, atol=1e-5)
        torch.testing.assert_close(x, direct.sample(*w, 2, 2.0), rtol=0, atol=1e-4)
    assert runner.items == 2 * n * rounds
    assert runner.mean_batch_size > 1


def test_mixed_steps_and_guidance_run_as_separate_batches(model, runner):
    asks = [(2, 2.0, 1), (2, 2.0, 2), (4, 2.0, 3), (2, 1.0, 4), (2, 1.0, 5)]
    out = held(runner, [lambda s=s, g=g, k=k: runner.sample(*window(model, k), s, g) for s, g, k in asks])
    direct = DirectRunner(model)
    for (steps, guidance, k), x in zip(asks, out, strict=True):
        torch.testing.assert_close(x, direct.sample(*window(model, k), steps, guidance), rtol=0, atol=1e-4)
    assert (runner.batches, runner.items) == (1 + 3, 1 + len(asks))  # the gate, then one call per (steps, guidance)


def test_an_error_reaches_every_caller_of_its_batch_and_the_runner_goes_on(model, runner):
    bad = contexts(model, 1, 1)
    bad[0][0, 0, 0] = float("nan")
    fine = contexts(model, 2, 2)
    out = held(
        runner,
        [lambda: runner.embed(*bad), lambda: runner.embed(*fine), lambda: runner.sample(*window(model, 3), 2, 2.0)],
    )
    assert isinstance(out[0], ValueError) and isinstance(out[1], ValueError)  # one embed call for both
    assert out[2].shape == (1, model.config.window, model.config.motion_dim)  # another call: unaffected
    torch.testing.assert_close(runner.embed(*fine), DirectRunner(model).embed(*fine), rtol=0, atol=1e-5)


def test_a_closed_runner_refuses_calls(model):
    runner = BatchRunner(model)
    runner.close()
    runner.close()
    with pytest.raises(RunnerClosed):
        runner.embed(*contexts(model, 1, 0))


def test_streams_batched_together_make_what_they_make_alone(shipped, sentence):
    mel = log_mel(sentence)
    phones = recognize(sentence)  # (classes, confidence) of every row
    phones = encode(*phones)
    params = [MotionParams(seed=seed, block_frames=4) for seed in (1, 2, 3)]

    def run(p, runner=None):
        stream = MotionStream(*shipped, p, runner)
        parts = [stream.push(mel[i : i + 2], phones[i : i + 2]) for i in range(0, len(mel), 2)]
        return np.concatenate([*parts, stream.finish()])

    alone = [run(p) for p in params]
    runner = BatchRunner(shipped[0], max_wait_ms=20)
    try:
        threads, together = in_threads(*(lambda p=p: run(p, runner) for p in params))
        for t in threads:
            t.join(60)
    finally:
        runner.close()
    assert runner.mean_batch_size > 1
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)
    assert np.abs(alone[0] - alone[1]).max() > 0.01  # the seeds matter: each stream keeps its own
