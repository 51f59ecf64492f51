"""Helpers for the zoo serve tests: the real `zoo serve` in a subprocess, zoo run's outputs, and raw HTTP.

A server is started with ``--port 0`` (the kernel picks a free loopback port, and zoo serve prints it) and stopped
with SIGTERM. Raw-socket requests let the tests send what no well-behaved client sends (a 1 GB Content-Length,
headers one byte a second) and time the answer.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import run_zoo
from tests.test_images import street, write

NAME = "unet-tiny"  # the zoo-unet test plugin's tiny network (tests/models.py)
READY = re.compile(r"on (https?)://([\d.]+):(\d+)")


class ServeProcess:
    """``zoo serve ARGS --port 0`` in a subprocess; its stderr collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int = 0, timeout: float = 180):
        cmd = [sys.executable, "-m", "zoo", "serve", *args]
        if "--port" not in args:
            cmd += ["--port", str(port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})  # fmt: skip
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.port = 0
        self.scheme = "http"
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"zoo serve did not start (exit {self.proc.poll()}):\n" + "\n".join(self.lines))

    def _read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not self.ready.is_set():
                self.scheme, self.port = match.group(1), int(match.group(3))
                self.ready.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 60) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One HTTP request on a fresh connection: status, headers (lower-case names), body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def segment(port: int, data: bytes, fmt: str = "png", content_type: str = "image/png", **kw) -> tuple[int, dict, bytes]:
    query = "" if fmt == "png" else f"?format={fmt}"
    return request(port, "POST", f"/v1/models/{NAME}/segment{query}", data, {"Content-Type": content_type}, **kw)


def raw(port: int, data: bytes, *, per_byte: float = 0.0, at_once: int = 0, wait: float = 60
        ) -> tuple[int, bytes, float]:  # fmt: skip
    """Send ``data`` on a socket (the first ``at_once`` bytes at once, then ``per_byte`` s between bytes: a trickle)
    while reading the answer: its status, body and the seconds it took. The sender stops once the server answered."""
    started = time.monotonic()
    answered = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:

        def send() -> None:
            try:
                if not per_byte:
                    sock.sendall(data)
                    return
                sock.sendall(data[:at_once])
                for byte in data[at_once:]:
                    if answered.is_set():
                        return
                    sock.sendall(bytes([byte]))
                    time.sleep(per_byte)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        reply = b""
        try:
            while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        answered.set()
        seconds = time.monotonic() - started
        sender.join(5)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return (int(match.group(1)) if match else 0), reply.split(b"\r\n\r\n", 1)[-1], seconds


def _length(reply: bytes) -> int:
    match = re.search(rb"(?im)^content-length:\s*(\d+)", reply.split(b"\r\n\r\n", 1)[0])
    return int(match.group(1)) if match else 0


def images(folder: Path) -> dict[str, Path]:
    """Three test images: two PNG sizes and a JPEG (so batches mix sizes and JPEG decoding is covered)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    noisy = np.clip(street(64, 96).astype(np.int16) + rng.integers(-40, 40, (64, 96, 3)), 0, 255).astype(np.uint8)
    return {
        "street": write(folder / "street.png", street()),
        "small": write(folder / "small.png", noisy),
        "photo": write(folder / "photo.jpg", street(120, 200), cv2.IMWRITE_JPEG_QUALITY, 85),
    }


def zoo_run(paths: list[Path], out: Path, env: dict[str, str]) -> dict[str, dict[str, bytes]]:
    """`zoo run`'s files per input stem: the oracle every served output is compared with."""
    run_zoo("run", NAME, *map(str, paths), "--out", str(out), env=env, check=True)
    results = {}
    for path in paths:
        results[path.stem] = {kind: (out / f"{path.stem}.{kind}").read_bytes()
                              for kind in ("labels.png", "color.png", "overlay.jpg", "json")}  # fmt: skip
    return results


def site(model_store, root: Path) -> tuple[dict[str, str], dict[str, Path], dict[str, dict[str, bytes]]]:
    """A ZOO_HOME under ``root`` with unet-tiny cached and converted; the env to use it, the images, zoo run's files."""
    import pytest

    from tests.models import use_unet_plugin

    env = {"ZOO_HOME": str(root / "home"), **use_unet_plugin()}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        model_store.install_converted(NAME)
    pics = images(root / "pics")
    return env, pics, zoo_run(list(pics.values()), root / "zoo-run", env)


def decode_png(data: bytes) -> np.ndarray:
    """A PNG as stored (label ids stay ids; a colour PNG comes back RGB)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def rgb_of(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def classes_of(summary: bytes) -> dict[str, float]:
    return json.loads(summary)["classes"]
