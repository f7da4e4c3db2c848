"""Model calls of many sessions as one batch.

Every model call of a ``MotionStream`` goes through a ``Runner``: ``embed`` turns mel and
phonetic contexts into audio embeddings, ``sample`` generates one window of motion from given starting noise. A
``DirectRunner`` runs each call at once (one session at a time: a lone stream, an offline job);
a ``BatchRunner`` merges the calls that sessions on different threads make at about the same
time into one model call. On a GPU a call of many windows costs about what one does; on a small
CPU it does not (measured on 2 cores: one window 3.8 ms, two 5.9 ms, four 9.7 ms — mostly
compute — while the hand-off to the batch's thread costs ~0.6 ms), which is why the server
batches by default only on a GPU (``bench/bench_batch.py``). ``make_runner`` picks one. Both run the model on a
``device`` (a copy of it for a GPU) and take and give CPU tensors, so the callers' code is the
same on CUDA and on a CPU.

Shapes: ``n`` frames, ``S`` mel frames of context (``model.mel_span``), ``M`` mel bands,
``P`` phonetic rows of context (``model.phone_span``), ``F`` features a row, ``A`` audio
embedding size, ``W`` window frames, ``D`` motion channels.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..config import INFERENCE_STEPS_RANGE, check_range
from ..errors import SonicError
from .model import MotionDenoiser
from .sampler import make_scheduler, sample_window

MAX_BATCH = 16  # requests merged into one model call at most
MAX_WAIT_MS = 2.0  # after the first request of a batch, how long to wait for more
RECENT_S = 0.05  # a thread that called within this long (a frame or two) may call again soon: worth waiting for


class RunnerClosed(SonicError):
    code = "runner_closed"


class Runner(Protocol):
    model: MotionDenoiser  # on ``device``
    device: torch.device

    def embed(self, mel: torch.Tensor, phones: torch.Tensor) -> torch.Tensor:
        """Raw log-mel contexts ``(n, S, M)`` and phonetic contexts ``(n, P, F)`` -> audio embeddings ``(n, A)``."""

    def sample(self, audio_emb: torch.Tensor, known: torch.Tensor, known_mask: torch.Tensor, noise: torch.Tensor,
               steps: int, guidance: float) -> torch.Tensor:  # fmt: skip
        """Normalised clean motion ``(1, W, D)`` of one window: audio embeddings ``(1, W, A)``,
        known motion ``(1, W, D)`` where ``known_mask`` ``(1, W, 1)`` is 1, starting noise ``(1, W, D)``."""

    def close(self) -> None: ...


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_runner(model: MotionDenoiser, batched: bool, device: torch.device | str | None = None, **options) -> Runner:
    """A ``BatchRunner`` (``options``: its ``max_batch``, ``max_wait_ms``, ``on_batch``) or a ``DirectRunner``."""
    device = torch.device(device) if device is not None else default_device()
    return BatchRunner(model, device, **options) if batched else DirectRunner(model, device)


def on_device(model: MotionDenoiser, device: torch.device) -> MotionDenoiser:
    """``model`` itself on a CPU, else an inference copy of it on ``device`` (the CPU one is left as it is)."""
    if device.type == "cpu":
        return model
    return copy.deepcopy(model).to(device).eval()  # eval() also drops traces copied from the CPU model


class DirectRunner:
    """Each call at once, on the caller's thread. Thread-safe (a scheduler per thread).

    ``embed`` runs one frame per model call: the arithmetic is then the same however a stream's
    audio is chunked, so a stream's output does not depend on its network's packet sizes."""

    def __init__(self, model: MotionDenoiser, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = on_device(model, self.device)
        self._local = threading.local()

    @torch.inference_mode()
    def embed(self, mel: torch.Tensor, phones: torch.Tensor) -> torch.Tensor:
        mel, phones = mel.to(self.device), phones.to(self.device)
        return torch.cat([self.model.embed_audio(m[None], p[None]) for m, p in zip(mel, phones, strict=True)]).cpu()

    def sample(self, audio_emb, known, known_mask, noise, steps, guidance) -> torch.Tensor:
        inputs = (t.to(self.device) for t in (audio_emb, known, known_mask, noise))
        return _sample(self.model, self._scheduler(), *inputs, steps, guidance).cpu()

    def close(self) -> None:
        pass

    def _scheduler(self):
        if not hasattr(self._local, "scheduler"):  # a scheduler holds the timesteps of the call it runs
            self._local.scheduler = make_scheduler(self.model.config.num_train_timesteps)
        return self._local.scheduler


def _sample(model, scheduler, audio_emb, known, known_mask, noise, steps, guidance) -> torch.Tensor:
    return sample_window(model, scheduler, audio_emb, known, known_mask, steps, guidance, noise=noise)


@dataclass
class _Request:
    kind: str  # "embed" or "sample"
    group: tuple  # requests of one group run as one model call
    inputs: tuple[torch.Tensor, ...]  # each with the request's rows on dim 0
    future: Future = field(default_factory=Future)


_STOP = object()


class BatchRunner:
    """Calls from many threads merged into one model call per kind (and per steps and guidance).

    A worker thread takes the first queued request, waits up to ``max_wait_ms`` for more (less
    once ``max_batch`` are there, or once every thread that called within ``RECENT_S`` has a
    request queued: nobody else is coming), runs each group as one batch and gives every caller
    its rows. An error in a model call reaches every caller of that call. Results match a
    ``DirectRunner``'s to float rounding (a batch of one: exactly, for ``sample``).

    ``batches`` and ``items`` count the model calls run and the requests they served;
    ``on_batch(size)`` is called after each (from the worker thread).
    """

    def __init__(
        self,
        model: MotionDenoiser,
        device: torch.device | str = "cpu",
        max_batch: int = MAX_BATCH,
        max_wait_ms: float = MAX_WAIT_MS,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = on_device(model, self.device)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.batches = 0
        self.items = 0
        self._on_batch = on_batch
        self._scheduler = make_scheduler(self.model.config.num_train_timesteps)  # the worker's alone
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._callers: dict[int, float] = {}  # thread id -> when it last called
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="sonic-rt-batch", daemon=True)
        self._worker.start()

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def embed(self, mel: torch.Tensor, phones: torch.Tensor) -> torch.Tensor:
        return self._call("embed", ("embed",), (mel, phones))

    def sample(self, audio_emb, known, known_mask, noise, steps, guidance) -> torch.Tensor:
        check_range("inference_steps", steps, INFERENCE_STEPS_RANGE)  # a bad request fails alone
        group = ("sample", steps, float(guidance), tuple(audio_emb.shape[1:]))
        return self._call("sample", group, (audio_emb, known, known_mask, noise))

    def close(self) -> None:
        """Stop the worker once the queued requests are done; later calls raise ``RunnerClosed``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join()

    def _call(self, kind: str, group: tuple, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        request = _Request(kind, group, inputs)
        with self._lock:
            if self._closed:
                raise RunnerClosed("the batch runner is closed")
            self._callers[threading.get_ident()] = time.monotonic()
            self._queue.put(request)
        return request.future.result()

    # -- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            self._run_batch(batch)
            if stop:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` and what arrives with it; whether the stop marker came too."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch and len(batch) < self._active_callers():
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _active_callers(self) -> int:
        now = time.monotonic()
        with self._lock:
            for ident in [i for i, t in self._callers.items() if now - t > RECENT_S]:
                del self._callers[ident]
            return len(self._callers)

    def _run_batch(self, batch: list[_Request]) -> None:
        groups: dict[tuple, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.group, []).append(request)
        for requests in groups.values():
            try:
                rows = [len(r.inputs[0]) for r in requests]
                inputs = [torch.cat(parts).to(self.device) for parts in zip(*(r.inputs for r in requests), strict=True)]
                out = self._model_call(requests[0], inputs).cpu()
            except BaseException as err:  # every caller of this call gets it; the worker goes on
                for r in requests:
                    r.future.set_exception(err)
                continue
            self.batches += 1
            self.items += len(requests)
            for r, part in zip(requests, out.split(rows), strict=True):
                r.future.set_result(part)
            if self._on_batch is not None:
                self._on_batch(len(requests))

    @torch.inference_mode()
    def _model_call(self, request: _Request, inputs: list[torch.Tensor]) -> torch.Tensor:
        if request.kind == "embed":
            return self.model.embed_audio(*inputs)
        _, steps, guidance, _ = request.group
        return _sample(self.model, self._scheduler, *inputs, steps, guidance)
