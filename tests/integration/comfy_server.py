"""Run the real ComfyUI installed by ``scripts/install_comfyui.sh`` and talk to it over HTTP (stdlib only).

``ComfyServer(workdir).start()`` launches ``main.py --cpu`` on a free loopback port, with its input, output, temp and
user folders and its database under ``workdir`` and its log in ``workdir/comfyui.log``, and returns a
``ComfyClient``. ``stop()`` ends it by its process id: terminate, then kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMFY_HOME = Path(os.environ.get("VSSFLOW_COMFYUI_DIR", REPO_ROOT / ".comfyui")).resolve()
PACK_DIR_NAME = "ComfyUI-VSSFlow"  # the link name under custom_nodes/, as scripts/install_comfyui.sh makes it
PACK_PYTHON_MODULE = f"custom_nodes.{PACK_DIR_NAME}"  # what /object_info reports as python_module for our nodes
INSTALL_HINT = "run `bash scripts/install_comfyui.sh`"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class InstallMissing(Exception):
    """No usable ComfyUI install (a dev machine without one: the integration tests skip)."""


class InstallStale(Exception):
    """An install exists but does not match this checkout (the tests fail: rerun the install script)."""


class ServerStartError(RuntimeError):
    pass


class PromptRejected(RuntimeError):
    """POST /prompt answered with an error (HTTP 400: validation failed). ``body`` is the decoded JSON reply."""

    def __init__(self, status: int, body):
        self.status = status
        self.body = body
        super().__init__(f"POST /prompt -> HTTP {status}: {json.dumps(body)[:4000]}")


class PromptFailed(RuntimeError):
    """The prompt ran but did not end in ``status_str == "success"``. ``entry`` is its history entry."""

    def __init__(self, prompt_id: str, entry: dict, log_tail: str):
        self.prompt_id = prompt_id
        self.entry = entry
        status = entry.get("status", {})
        errors = [m[1] for m in status.get("messages", []) if m and m[0] in ("execution_error", "execution_interrupted")]
        super().__init__(
            f"prompt {prompt_id} ended with status {status.get('status_str')!r}: {json.dumps(errors)[:4000]}\n"
            f"--- ComfyUI log (tail) ---\n{log_tail}"
        )


def check_install(home: Path = COMFY_HOME) -> Path:
    """Return the venv's python, or raise ``InstallMissing`` / ``InstallStale`` with what to do."""
    python = home / "venv" / "bin" / "python"
    for path, what in ((home, "folder"), (python, "venv python"), (home / "ComfyUI" / "main.py", "ComfyUI tree"),
                       (home / "stamp-base", "base stamp")):
        if not path.exists():
            raise InstallMissing(f"no ComfyUI install: {what} {path} is missing; {INSTALL_HINT}")
    if not (home / "stamp-pack").exists():
        raise InstallStale(f"ComfyUI in {home} lacks the pack's requirements (did the last install fail?); {INSTALL_HINT}")
    link = home / "ComfyUI" / "custom_nodes" / PACK_DIR_NAME
    if not link.is_symlink() or link.resolve() != REPO_ROOT:
        raise InstallStale(f"{link} does not link to this checkout ({REPO_ROOT}); {INSTALL_HINT}")
    stamp = dict(line.split("=", 1) for line in (home / "stamp-pack").read_text().splitlines() if "=" in line)
    req_sha = hashlib.sha256((REPO_ROOT / "requirements.txt").read_bytes()).hexdigest()
    if stamp.get("requirements_sha256") != req_sha:
        raise InstallStale(f"requirements.txt changed since ComfyUI was installed in {home}; {INSTALL_HINT}")
    return python


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(python: Path) -> dict[str, str]:
    """The caller's environment without anything that points Python at the dev venv, plus offline switches."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env.update(
        PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(python.parent.parent),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PYTHONNOUSERSITE="1",
        DO_NOT_TRACK="1",
    )
    return env


class ComfyServer:
    def __init__(self, workdir: Path, *, home: Path = COMFY_HOME, extra_args: tuple[str, ...] = (),
                 model_folders: dict[str, Path] | None = None,
                 startup_timeout: float = float(os.environ.get("VSSFLOW_COMFYUI_STARTUP_TIMEOUT", "240"))):
        """``model_folders``: extra model folders by folder_paths name (e.g. ``{"vssflow": tmp / "models/vssflow"}``),
        passed to the server with ``--extra-model-paths-config``."""
        self.workdir = Path(workdir)
        self.home = home
        self.extra_args = tuple(extra_args)
        self.model_folders = dict(model_folders or {})
        self.startup_timeout = startup_timeout
        self.log_path = self.workdir / "comfyui.log"
        self.output_dir = self.workdir / "output"
        self.input_dir = self.workdir / "input"
        self.temp_dir = self.workdir / "temp"  # ComfyUI adds its own "temp/" below this
        self.user_dir = self.workdir / "user"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.startup_seconds: float | None = None

    # -- log ---------------------------------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return _ANSI.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- life cycle --------------------------------------------------------------------------------------------------
    def start(self, attempts: int = 3) -> ComfyClient:
        python = check_install(self.home)
        for d in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
            d.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(python)
            except ServerStartError as e:
                # free_port() can race with another process; only a bind failure is worth another port.
                if attempt == attempts or "address already in use" not in self.log_text().lower():
                    raise
                print(f"[comfy_server] port {self.port} taken, retrying: {e}")
        raise AssertionError("unreachable")

    def _start_once(self, python: Path) -> ComfyClient:
        self.port = free_port()
        cmd = [
            str(python), "main.py", "--cpu",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--temp-directory", str(self.temp_dir),
            "--user-directory", str(self.user_dir),
            "--database-url", f"sqlite:///{self.workdir / 'comfyui.db'}",
            "--disable-auto-launch",
            *self._model_paths_args(),
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=self.home / "ComfyUI", stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=server_env(python))
        client = ComfyClient(f"http://127.0.0.1:{self.port}", self)
        deadline = t0 + self.startup_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise ServerStartError(f"ComfyUI exited with code {code} before answering /system_stats "
                                       f"(log {self.log_path}):\n{self.log_tail()}")
            try:
                client.system_stats(timeout=2)
                self.startup_seconds = time.monotonic() - t0
                return client
            except (OSError, ValueError):  # URLError, ConnectionRefused, timeouts, half-written JSON
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"ComfyUI did not answer /system_stats within {self.startup_timeout:.0f} s "
                                       f"(log {self.log_path}):\n{self.log_tail()}")
            time.sleep(0.25)

    def _model_paths_args(self) -> list[str]:
        if not self.model_folders:
            return []
        config = self.workdir / "extra_model_paths.yaml"
        lines = ["vssflow_tests:"] + [f"    {name}: {json.dumps(str(Path(path).resolve()))}"
                                      for name, path in self.model_folders.items()]
        config.write_text("\n".join(lines) + "\n")
        return ["--extra-model-paths-config", str(config)]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """Terminate the server process by its pid; kill it if it is still there after ``timeout`` s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode


class ComfyClient:
    def __init__(self, base_url: str, server: ComfyServer | None = None):
        self.base_url = base_url.rstrip("/")
        self.server = server
        self.client_id = uuid.uuid4().hex

    # -- paths and log of the server behind this client --------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return self.server.output_dir

    @property
    def input_dir(self) -> Path:
        return self.server.input_dir

    def log_text(self) -> str:
        return self.server.log_text() if self.server else ""

    def log_tail(self, lines: int = 60) -> str:
        return self.server.log_tail(lines) if self.server else ""

    # -- HTTP ----------------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, payload=None, timeout: float = 30.0) -> tuple[int, bytes]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str, timeout: float = 30.0):
        status, body = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} -> HTTP {status}: {body[:2000]!r}")
        return json.loads(body)

    def system_stats(self, timeout: float = 30.0) -> dict:
        return self.get_json("/system_stats", timeout=timeout)

    def object_info(self, node_class: str | None = None) -> dict:
        """All node definitions, or ``{node_class: definition}`` for one."""
        path = "/object_info" if node_class is None else "/object_info/" + urllib.parse.quote(node_class)
        return self.get_json(path, timeout=60)

    def queue_prompt(self, prompt: dict, extra_data: dict | None = None) -> str:
        """POST an API-format prompt; return its prompt_id.

        Raises ``PromptRejected`` on HTTP 400, and also when ComfyUI accepted the prompt but reported node_errors for
        some of its outputs (it then runs the rest; ``body["prompt_id"]`` names it).
        """
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = self.request("POST", "/prompt", payload)
        try:
            reply = json.loads(body)
        except ValueError:
            reply = body.decode(errors="replace")
        if status != 200 or not isinstance(reply, dict) or reply.get("node_errors"):
            raise PromptRejected(status, reply)
        return reply["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json("/history/" + urllib.parse.quote(prompt_id)).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.1) -> dict:
        """Block until the prompt has finished (any outcome); return its /history entry."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)  # /history holds a prompt only once it has finished
            if entry is not None:
                return entry
            if self.server is not None and not self.server.running():
                raise RuntimeError(f"ComfyUI died while running prompt {prompt_id}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 120.0) -> dict:
        """queue_prompt + wait; raise ``PromptFailed`` unless it ended in success. Returns the history entry."""
        prompt_id = self.queue_prompt(prompt)
        entry = self.wait(prompt_id, timeout)
        if entry.get("status", {}).get("status_str") != "success":
            raise PromptFailed(prompt_id, entry, self.log_tail())
        return entry

    def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt: stop the running prompt (only if it is ``prompt_id``, when given)."""
        status, body = self.request("POST", "/interrupt", {"prompt_id": prompt_id} if prompt_id else {})
        if status != 200:
            raise RuntimeError(f"POST /interrupt -> HTTP {status}: {body[:2000]!r}")

    def view_path(self, path: str) -> bytes:
        """The bytes the server returns for ``GET path``."""
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> HTTP {status}")
        return body

    def events(self, timeout: float = 10.0) -> "EventStream":
        """This client's websocket (progress, executing, execution_* messages); use as a context manager."""
        return EventStream(self.base_url, self.client_id, timeout)

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """The bytes of an output/temp/input file, as the frontend fetches them."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        status, body = self.request("GET", "/view?" + query)
        if status != 200:
            raise RuntimeError(f"GET /view?{query} -> HTTP {status}")
        return body


class EventStream:
    """The server's websocket for one client id (stdlib only): ``next()`` returns its JSON messages one at a time.

    Only what ComfyUI needs: an HTTP upgrade, unmasked server frames (text, binary previews, ping, close), fragments
    joined, pings answered. Connect before queueing a prompt so that its events come to this client id.
    """

    def __init__(self, base_url: str, client_id: str, timeout: float = 10.0):
        import base64

        parsed = urllib.parse.urlparse(base_url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws?clientId={urllib.parse.quote(client_id)} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the websocket during the handshake")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket upgrade refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the websocket")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode, 0x80 | len(payload)])  # control frames only: payload < 126 bytes
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read_frame(self) -> tuple[bool, int, bytes]:
        import struct

        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", self._read(8))
        mask = self._read(4) if b1 & 0x80 else None
        payload = self._read(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def next(self, timeout: float = 30.0) -> dict | None:
        """The next JSON message, or None when nothing came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        message, kind = b"", None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                fin, opcode, payload = self._read_frame()
            except socket.timeout:
                return None
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("the server closed the websocket")
            if opcode in (0x1, 0x2):
                kind, message = opcode, payload
            elif opcode == 0x0:
                message += payload
            if not fin:
                continue
            if kind == 0x1:
                return json.loads(message)
            message, kind = b"", None  # binary frames are image previews: skipped

    def close(self) -> None:
        try:
            self._send(0x8)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
