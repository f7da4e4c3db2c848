"""A real ComfyUI for tests and benchmarks: built once from ``../shared/comfyui``'s snapshot and cached,
started on loopback with the repository's ``comfyui_sonic_rt`` linked into its ``custom_nodes``.

The build follows ``../shared/comfyui/README.md``: a venv with torch 2.13.0 (the CPU wheel) first,
ComfyUI's ``requirements.txt`` without its torch, torchvision and torchaudio lines, constrained to
that torch (spandrel pulls torchvision anyway), torchaudio without its dependencies and without
its CUDA-built C++ extension, torchvision's two ``register_fake`` decorators for its missing C
operators made conditional, then sonic-rt the way a user installs it into ComfyUI's Python, then
the node pack's ``requirements.txt`` the way ComfyUI-Manager does (it must be satisfied by then).
It lives outside the repository, in ``$SONIC_RT_COMFYUI_CACHE`` (default
``~/.cache/sonic-rt-comfyui``), one folder per key: a hash of the snapshot, the build steps, the
Python version, the project's dependencies and the node pack's requirements. A cached build is
used as it is; a change to any of these builds a new one (and removes the older ones).

The running server takes sonic-rt's code from the checkout (``PYTHONPATH``), so a code change
needs no rebuild, and writes only into a folder of its own (inputs, outputs, user data, database).

    python -m tests.comfyui.harness          # build (or find) the cached ComfyUI, print where and how long
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import uuid
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_COMFYUI = Path(os.environ.get("SONIC_RT_SHARED_COMFYUI", REPO.parent / "shared" / "comfyui"))
NODE_PACK = REPO / "comfyui_sonic_rt"
NODE_FOLDER = "sonic-rt"  # the name under custom_nodes/ (what the template browser groups by)
BUILD_STEPS = 1  # bump when the build below changes, so cached builds are made again
TORCH = "torch==2.13.0"  # the CPU wheel: anything else pulls the multi-GB CUDA build
TORCHAUDIO = "torchaudio==2.11.1"  # a CUDA build: installed without deps, used without its C++ extension
NOT_FROM_COMFYUI_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}
START_TIMEOUT_S = 180.0
FINAL_MESSAGES = {"execution_success", "execution_error", "execution_interrupted"}  # one ends each prompt


class HarnessError(RuntimeError):
    """The ComfyUI for tests could not be built or started; the message carries its log's tail."""


def snapshot() -> Path | None:
    """The ComfyUI source snapshot (``ComfyUI-<commit>.tar.gz``) in ``../shared/comfyui``, if there."""
    found = sorted(SHARED_COMFYUI.glob("ComfyUI-*.tar.gz")) if SHARED_COMFYUI.is_dir() else []
    return found[-1] if found else None


def cache_root() -> Path:
    if env := os.environ.get("SONIC_RT_COMFYUI_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sonic-rt-comfyui"


def build_key(tarball: Path) -> str:
    """What a build depends on, hashed: the snapshot, these steps, Python, the dependencies installed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    digest = hashlib.sha256()
    with tarball.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    parts = {
        "steps": BUILD_STEPS,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "snapshot": digest.hexdigest(),
        "pins": [TORCH, TORCHAUDIO],
        "dependencies": sorted(project["dependencies"]),
        "node_requirements": (NODE_PACK / "requirements.txt").read_text(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Build:
    """A ready ComfyUI: its source folder and its venv's Python; ``build_s`` is None when it was cached."""

    root: Path
    build_s: float | None

    @property
    def comfyui(self) -> Path:
        return self.root / "ComfyUI"

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"


def ensure_build(log: Callable[[str], None] = print) -> Build:
    """The cached build for the current key, made first if missing (under a lock: one builder at a time)."""
    tarball = snapshot()
    if tarball is None:
        raise HarnessError(f"no ComfyUI snapshot (ComfyUI-*.tar.gz) in {SHARED_COMFYUI}")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    key = build_key(tarball)
    folder = root / key
    with _locked(root / f"{key}.lock"):
        if (folder / "ready").is_file():
            return Build(folder, None)
        t0 = time.perf_counter()
        shutil.rmtree(folder, ignore_errors=True)  # a build cut short
        folder.mkdir()
        log(f"building ComfyUI for the tests in {folder} (once per key; about 2-3 min)")
        _build(tarball, folder, log)
        build_s = time.perf_counter() - t0
        (folder / "ready").write_text(json.dumps({"build_s": round(build_s, 1), "snapshot": tarball.name}))
    _prune(root, keep=key)
    return Build(folder, build_s)


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    with path.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _prune(root: Path, keep: str) -> None:
    """Remove builds of other keys (each is about 3 GB) that nobody is using or building."""
    for lock in root.glob("*.lock"):
        if lock.stem == keep:
            continue
        with _locked(lock, blocking=False) as free:
            if free:
                shutil.rmtree(root / lock.stem, ignore_errors=True)
                lock.unlink(missing_ok=True)


def _build(tarball: Path, folder: Path, log: Callable[[str], None]) -> None:
    build_log = folder / "build.log"
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    comfyui = folder / "ComfyUI"
    if not (comfyui / "main.py").is_file():
        raise HarnessError(f"{tarball} does not hold a ComfyUI/ folder with main.py")
    venv.EnvBuilder(with_pip=True).create(folder / "venv")
    python = folder / "venv" / "bin" / "python"
    pins = folder / "constraints.txt"
    pins.write_text(TORCH + "\n")
    requirements = folder / "comfyui-requirements.txt"
    requirements.write_text(_comfyui_requirements(comfyui / "requirements.txt"))

    def pip(*args: str) -> None:
        log(f"  pip install {' '.join(args)}")
        _run([str(python), "-m", "pip", "install", "--quiet", *args], build_log, cwd=folder)

    pip(TORCH)
    pip("-r", str(requirements), "-c", str(pins))
    pip("--no-deps", TORCHAUDIO)
    site = Path(_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    for library in (site / "torchaudio" / "lib").glob("*.so"):
        library.unlink()  # CUDA-linked; ComfyUI's audio nodes use only torchaudio's pure-torch parts
    _patch_torchvision(python, site)
    pip(str(REPO), "-c", str(pins))  # sonic-rt into ComfyUI's Python, as the README says
    pip("-r", str(NODE_PACK / "requirements.txt"), "-c", str(pins))  # what ComfyUI-Manager runs
    check = "import torchvision.transforms, torchaudio, sonic_rt.comfyui; torchaudio.functional.resample"
    _run([str(python), "-c", check], build_log, cwd=folder)


def _comfyui_requirements(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        name = line.split("#")[0].strip()
        for mark in "<>=~![; ":
            name = name.split(mark)[0]
        if name.lower() not in NOT_FROM_COMFYUI_REQUIREMENTS:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _patch_torchvision(python: Path, site: Path) -> None:
    """torchvision's registry build is a CUDA one: its ``_C`` does not load, which torchvision
    tolerates except for two ``register_fake`` decorators on operators that then do not exist."""
    if subprocess.run([str(python), "-c", "import torchvision"], capture_output=True).returncode == 0:
        return
    path = site / "torchvision" / "_meta_registrations.py"
    text = path.read_text()
    patched = text
    for op in ("nms", "qnms"):
        decorator = f'@torch.library.register_fake("torchvision::{op}")\n'
        conditional = (f'@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops() '
                       "else (lambda fn: fn))\n")  # fmt: skip
        patched = patched.replace(decorator, conditional)
    if patched.count("torchvision.extension._has_ops() else") != 2:
        raise HarnessError(f"torchvision does not import and {path} is not as expected: see ../shared/comfyui")
    path.write_text(patched)


def _run(cmd: list[str], log: Path, cwd: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    if done.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed ({done.returncode}); {log}:\n{_tail(log)}")


def _output(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(line for line in text if not line.startswith("WARNING: Location"))[-6000:] or "(empty)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A ComfyUI process on 127.0.0.1 whose inputs, outputs and state live under ``base``."""

    build: Build
    base: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    start_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.base / "comfyui.log"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    def start(self) -> Server:
        import httpx

        custom_nodes = self.base / "custom_nodes"
        custom_nodes.mkdir(parents=True, exist_ok=True)
        (custom_nodes / NODE_FOLDER).symlink_to(NODE_PACK, target_is_directory=True)
        cmd = [str(self.build.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--base-directory", str(self.base),
               "--database-url", f"sqlite:///{self.base / 'comfyui.db'}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        with self.log.open("w") as out:
            self.process = subprocess.Popen(cmd, cwd=self.build.comfyui, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = t0 + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"ComfyUI exited ({self.process.returncode}) while starting; {self.log}:\n"
                                   f"{_tail(self.log)}")  # fmt: skip
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/system_stats", timeout=2).status_code == 200:
                    self.start_s = time.perf_counter() - t0
                    return self
            time.sleep(0.25)
        self.stop()
        raise HarnessError(f"ComfyUI did not answer within {START_TIMEOUT_S:g} s; {self.log}:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Client:
    """ComfyUI's HTTP API and its /ws socket, as the frontend uses them, for one client id."""

    def __init__(self, server: Server):
        import httpx

        self.server = server
        self.client_id = uuid.uuid4().hex
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self._messages: list[dict] = []
        self._changed = threading.Condition()
        self._socket = None
        self._connected = threading.Event()
        self._failed: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="comfyui-ws", daemon=True)
        self._reader.start()
        if not self._connected.wait(30) or self._failed is not None:
            raise HarnessError(f"could not open ComfyUI's /ws socket: {self._failed!r}")

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        try:
            with connect(f"ws://127.0.0.1:{self.server.port}/ws?clientId={self.client_id}", max_size=None) as ws:
                self._socket = ws
                self._connected.set()
                with contextlib.suppress(ConnectionClosed):
                    for message in ws:
                        if isinstance(message, str):  # binary messages are preview images
                            with self._changed:
                                self._messages.append({**json.loads(message), "at": time.perf_counter()})
                                self._changed.notify_all()
        except OSError as err:
            self._failed = err
            self._connected.set()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._reader.join(10)
        self.http.close()

    def upload(self, name: str, data: bytes) -> str:
        """Put a file into ComfyUI's input folder the way the frontend's upload button does."""
        reply = self.http.post("/upload/image", files={"image": (name, data)}, data={"overwrite": "true"})
        reply.raise_for_status()
        return reply.json()["name"]

    def post_prompt(self, prompt: dict):
        """POST /prompt; the reply as it is (400 with ComfyUI's validation errors, or the prompt id)."""
        return self.http.post("/prompt", json={"prompt": prompt, "client_id": self.client_id})

    def queue(self, prompt: dict) -> str:
        reply = self.post_prompt(prompt)
        if reply.status_code != 200:
            raise AssertionError(f"ComfyUI refused the prompt ({reply.status_code}): {reply.text}")
        return reply.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300.0, poll_s: float = 0.05) -> dict:
        """Poll /history until the prompt has finished (succeeded, failed or was interrupted), then wait
        for the socket's last message about it (/history can be written before /ws is sent)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            entry = self.http.get(f"/history/{prompt_id}").json().get(prompt_id)
            if entry and (entry["status"]["completed"] or entry["status"]["status_str"] == "error"):
                self.wait_message(prompt_id, lambda m: m["type"] in FINAL_MESSAGES, timeout=30)
                return entry
            time.sleep(poll_s)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout:g} s; {self.server.log}:\n"
                             f"{_tail(self.server.log)}")  # fmt: skip

    def messages(self, prompt_id: str, kind: str | None = None) -> list[dict]:
        with self._changed:
            return [m for m in self._messages if m.get("data", {}).get("prompt_id") == prompt_id
                    and (kind is None or m["type"] == kind)]  # fmt: skip

    def wait_message(self, prompt_id: str, predicate: Callable[[dict], bool], timeout: float = 120.0) -> dict:
        deadline = time.perf_counter() + timeout
        with self._changed:
            while True:
                for m in self._messages:
                    if m.get("data", {}).get("prompt_id") == prompt_id and predicate(m):
                        return m
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise AssertionError(f"no such message for prompt {prompt_id} within {timeout:g} s")
                self._changed.wait(left)

    def output_files(self, entry: dict) -> list[Path]:
        """The files the prompt's output nodes wrote, in ComfyUI's output folder."""
        files = []
        for output in entry.get("outputs", {}).values():
            for kind in ("images", "audio", "gifs", "video"):
                for item in output.get(kind, []):
                    if item.get("type") == "output":
                        files.append(self.server.output_dir / item.get("subfolder", "") / item["filename"])
        return files


def main() -> None:
    if snapshot() is None:
        print(f"skipped: no ComfyUI snapshot in {SHARED_COMFYUI}; the real-ComfyUI tests will skip")
        return
    build = ensure_build()
    status = "cached" if build.build_s is None else f"built in {build.build_s:.0f} s"
    print(f"ComfyUI for the tests: {build.root} ({status})")


if __name__ == "__main__":
    main()
