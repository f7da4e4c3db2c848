"""The FastAPI app: one port for the REST API, the WebSocket stream, WebRTC signalling and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BeforeValidator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from sonic_rt.config import GeometryParams
from sonic_rt.errors import ConsentRequired, SonicError
from sonic_rt.face.samples import CREDITS, PREFIX, SAMPLES, load_sample
from sonic_rt.provenance.audit import CONSENT_ATTESTATION, SERVER_STOPPED

from . import auth, gates, heap, looplag, webrtc, ws
from .auth import Requester
from .errors import BUSY, REFUSED, error_response
from .portraits import UnknownPortrait
from .state import AppState, BadParams, Busy, NoRecording, Settings, build_state
from .workers.jobs import JobLost, JobsBusy
from .workers.pool import NoWorker

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
STATUS = {UnknownPortrait: 404, NoRecording: 404, BadParams: 422, ConsentRequired: 403, Busy: 503}
STATUS.update({NoWorker: 503, JobsBusy: 503, JobLost: 500})  # the worker and job processes
STATUS.update(auth.STATUS)  # unauthorized 401, bad_origin 403, too_many_sessions and quota_exceeded 429
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "A JPEG image"}}
MP4 = {200: {"content": {"video/mp4": {}}, "description": "An MP4 video"}}


def _flag(value: object) -> object:
    """A form's yes or no, spelled ``true`` or ``false``. Multipart sends every value as text, and
    pydantic alone would also read 1, 0, "on", "no" or "t" as a boolean: a consent is not a guess."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


Flag = Annotated[bool, BeforeValidator(_flag)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if settings.ice_addresses is not None:
            webrtc.use_host_addresses(settings.ice_addresses)
        app.state.sonic = await loop.run_in_executor(None, build_state, settings)
        heap.freeze()  # what starting made (the models, the warmed-up workers' clients) is kept out of full collections
        lag = asyncio.create_task(looplag.watch(app.state.sonic.metrics.loop_lag))
        try:
            yield
        finally:
            lag.cancel()
            state = app.state.sonic
            for peer in list(state.peers.values()):
                await peer.close(SERVER_STOPPED)
            await loop.run_in_executor(None, state.audit.close)  # ends what is still open, then server_stop
            state.executor.shutdown(wait=False, cancel_futures=True)
            if state.runner is not None:
                state.runner.close()  # a session still running gets RunnerClosed at its next model call
            state.recordings.close()
            await loop.run_in_executor(None, state.close)  # the worker processes
            if state.generators is not None:
                from .cluster import launch

                await loop.run_in_executor(None, launch.stop, settings.ray.address is None)

    app = FastAPI(
        title="sonic-rt",
        version="0.1.0",
        summary="One portrait + audio -> a lip-synced talking face, live or as an MP4",
        lifespan=lifespan,
        responses=REFUSED,  # every route
    )
    app.include_router(ws.router)
    app.include_router(webrtc.router)
    gates.install(app)  # the rates: inside the access rules, which come next
    auth.install(app, settings.allowed_origins, keyed=settings.keys_db is not None)
    _add_routes(app)
    app.mount("/", StaticFiles(directory=_web_client(), html=True), name="web_client")
    return app


def _web_client() -> Path:
    """The browser client's folder: the ``web_client`` package (static files shipped as package data)."""
    import web_client

    return Path(web_client.__file__).parent


def _state(request: Request) -> AppState:
    return request.app.state.sonic


def _add_routes(app: FastAPI) -> None:
    @app.exception_handler(SonicError)
    async def sonic_error(request: Request, err: SonicError) -> JSONResponse:
        _state(request).metrics.errors.labels(err.code).inc()
        return error_response(STATUS.get(type(err), 422), err.code, str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        """A request its route's declared types refuse: ``bad_params`` like any other bad parameter,
        in the same body as every error (not FastAPI's own ``{"detail": [...]}``)."""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return await sonic_error(request, BadParams(f"bad request: {problems}"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        """HTTP's own refusals (a body that cannot be parsed, no such path or method), in the same
        body, their code the status's name: ``bad_request``, ``not_found``, ``method_not_allowed``."""
        response = error_response(err.status_code, HTTPStatus(err.status_code).phrase.lower().replace(" ", "_"),
                                  str(err.detail))  # fmt: skip
        response.headers.update(err.headers or {})
        return response

    @app.get("/healthz", summary="Liveness and capacity")
    async def healthz(request: Request) -> dict:
        state = _state(request)
        slots = state.slots
        health = {"status": "ok", "sessions": slots.used, "capacity": slots.capacity}
        if state.generators is not None:  # serving on Ray: the generator replicas running now
            from .cluster import launch

            health["replicas"] = await asyncio.get_running_loop().run_in_executor(None, launch.running_replicas)
        if state.pool is not None:  # the worker processes: each one's sessions and CPU time so far
            health["workers"] = state.pool.load()
        if state.jobs is not None:  # enrolments and renders: running, waiting, and their processes
            health["jobs"] = state.jobs.load()
        return health

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        state = _state(request)
        if state.pool is not None:
            state.metrics.observe_workers(state.pool.load())
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/portraits", summary="Enrol a portrait (an image upload or a built-in sample); returns its id")
    async def enrol_portrait(
        request: Request,
        principal: Requester,
        image: UploadFile | None = File(None, description="JPEG, PNG or WebP portrait"),
        sample: str | None = Form(None, description="a built-in sample instead, e.g. sample:astronaut"),
        consent: Annotated[Flag, Form(description="required with an upload: the uploader attests that they may use "
                                      "this face and that the person shown agreed to it being animated")] = False,
        expand_ratio: float = Form(GeometryParams.expand_ratio),
        min_resolution: int = Form(GeometryParams.min_resolution),
    ) -> dict:
        state = _state(request)
        if (image is None) == (sample is None):
            raise BadParams("send exactly one of an image file or a sample name")
        if image is not None and not consent:
            raise ConsentRequired(
                "a portrait is only animated with consent: confirm (consent=true) that you may use this face "
                "and that the person shown agreed to it being animated"
            )
        try:
            geometry = GeometryParams(expand_ratio=expand_ratio, min_resolution=min_resolution)
        except ValueError as err:
            raise BadParams(str(err)) from None
        source = sample if sample is not None else await _read_upload(image)
        loop = asyncio.get_running_loop()
        portrait = await loop.run_in_executor(state.executor, state.portraits.enroll, source, geometry,
                                              CONSENT_ATTESTATION if consent else None)  # fmt: skip
        await state.audit.portrait(request, principal.name, portrait)
        state.metrics.portraits.inc()
        portrait_id, identity = portrait.id, portrait.identity
        return {
            "id": portrait_id, "size": identity.out_size, "faces": identity.n_faces,
            "face_box": list(identity.face_box), "timings_ms": identity.timings_ms,
            "consent": consent if image is not None else None, "image": f"/v1/portraits/{portrait_id}/image.jpg",
        }  # fmt: skip

    @app.get("/v1/portraits/{portrait_id}/image.jpg", summary="The enrolled portrait at rest, as a session starts",
             response_class=Response, responses=JPEG)  # fmt: skip
    async def portrait_image(request: Request, portrait_id: str) -> Response:
        from sonic_rt.animator import rest_image

        state = _state(request)
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(state.executor, state.portraits.get, portrait_id)
        return _jpeg(await loop.run_in_executor(state.executor, rest_image, identity))

    @app.get("/v1/sessions/{session_id}/recording.mp4", summary="A live session as an MP4 (so far, or all of it)",
             response_class=StreamingResponse, responses=MP4)  # fmt: skip
    async def recording(request: Request, session_id: str) -> Response:
        rec = _state(request).recordings.get(session_id)
        length = await asyncio.get_running_loop().run_in_executor(None, rec.readable)
        headers = {
            "Content-Length": str(length), "Cache-Control": "no-store", "X-Recording-Complete": str(rec.closed).lower(),
            "Content-Disposition": f'attachment; filename="sonic-rt-{session_id[:8]}.mp4"',
        }  # fmt: skip
        return StreamingResponse(_read_prefix(rec.path, length), media_type="video/mp4", headers=headers)

    @app.get("/v1/samples", summary="The built-in sample portraits")
    async def samples() -> dict:
        return {"samples": [
            {"id": PREFIX + name, "title": CREDITS.get(name, name), "image": f"/v1/samples/{name}.jpg"}
            for name in SAMPLES
        ]}  # fmt: skip

    @app.get("/v1/samples/{name}.jpg", summary="A sample portrait's photo", response_class=Response, responses=JPEG)
    async def sample_image(name: str) -> Response:
        if name not in SAMPLES:
            raise UnknownPortrait(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
        return _jpeg(load_sample(PREFIX + name))

    @app.post("/v1/renders", summary="Offline job: portrait + audio (or text) -> MP4", response_class=FileResponse,
              responses={**MP4, **BUSY})  # fmt: skip
    async def render(
        request: Request,
        principal: Requester,
        portrait: str = Form("sample:astronaut", description="a portrait id from POST /v1/portraits, or sample:NAME"),
        audio: UploadFile | None = File(None, description="any audio file ffmpeg reads"),
        text: str | None = Form(None, description="or text, spoken by the embedded TTS"),
        voice: str = Form("en-us"),
        phonemes: UploadFile | None = File(None, description="the audio's phoneme or viseme timings (JSON, as for "
                                           "`generate --phonemes`): they drive the mouth where they cover it"),
        params: str = Form("{}", description='Sonic parameters as JSON, e.g. {"dynamic_scale": 1.2, "fps": 30}'),
        crf: int = Form(20, ge=0, le=51),
        label: Annotated[Flag, Form(description='draw a visible "AI-generated" label on the video')] = False,
    ) -> Response:
        import json

        from sonic_rt import offline

        state = _state(request)
        if (audio is None) == (text is None):
            raise BadParams("send exactly one of an audio file or text")
        if phonemes is not None and audio is None:
            raise BadParams("phonemes go with an audio file (text knows its own phonemes)")
        try:
            flat = json.loads(params)
            if not isinstance(flat, dict):
                raise TypeError("params must be a JSON object")
            job = offline.JobParams.from_flat(**flat)
        except (ValueError, TypeError, RecursionError) as err:  # RecursionError: nested thousands deep
            raise BadParams(f"bad params: {err}") from None
        loop = asyncio.get_running_loop()
        enrolled = await loop.run_in_executor(state.executor, state.portraits.lookup, portrait)
        if text is not None:
            from sonic_rt.audio import tts

            source = await loop.run_in_executor(state.executor, tts.synthesize, text, voice)  # phonemes too
        else:
            source = await _read_upload(audio)
        if phonemes is not None:
            from sonic_rt.audio import timings

            try:
                marks = timings.loads((await _read_upload(phonemes)).decode("utf-8"))
            except UnicodeDecodeError:
                raise timings.BadTimings("the timings file is not UTF-8 text") from None
            source = offline.Timed(source, marks)
        grant = state.admit_job(principal)
        fd, name = tempfile.mkstemp(suffix=".mp4", prefix="sonic-rt-render-")
        os.close(fd)
        out = Path(name)
        fields = state.audit.session_fields(request, "render", enrolled, {**job.to_flat(), "crf": crf, "label": label},
                                            record=False, requester=principal.name)  # fmt: skip

        def render_job() -> offline.Result:
            with state.audit.log.session(uuid.uuid4().hex, **fields) as audited:  # its watermark, in the record
                options = {"crf": crf, "watermark": audited.watermark, "label": label, **flat}
                progress = lambda done, total: grant.need(total / job.video.fps)  # noqa: E731
                if state.jobs is not None:  # in a job process, at the lowest priority: live frames first
                    result = state.jobs.render(enrolled.identity, source, out, progress, **options)
                else:
                    result = offline.generate(enrolled.identity, source, out, progress=progress, **options)
                audited.done(result.frames, result.seconds)
            return result

        try:
            result = await loop.run_in_executor(state.executor, render_job)
            grant.spend(result.seconds)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            state.release_job(grant)
        state.metrics.renders.inc()
        state.metrics.render_seconds.observe(result.wall_s)
        headers = {"X-Frames": str(result.frames), "X-Seconds": f"{result.seconds:.3f}",
                   "X-Wall-Seconds": f"{result.wall_s:.3f}", "X-Watermark": f"{result.watermark:08x}"}  # fmt: skip
        return FileResponse(out, media_type="video/mp4", filename="render.mp4", headers=headers,
                            background=BackgroundTask(out.unlink, missing_ok=True))  # fmt: skip


def _jpeg(rgb) -> Response:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return Response(data.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _read_prefix(path: Path, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while length > 0 and (data := f.read(min(chunk, length))):
            length -= len(data)
            yield data


async def _read_upload(upload: UploadFile) -> bytes:
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadParams(f"uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MiB")
    return data
