"""zoo serve --engine ray: the same app as a Ray Serve deployment with 2 replicas, on a real local Ray cluster,
gives zoo run's outputs on every endpoint. The README's Ray command is the one started (with this test's model)."""

from __future__ import annotations

import shlex
import socket

import numpy as np
import pytest

from tests.models import model_store  # noqa: F401 - fixture
from tests.serving import NAME, ServeProcess, decode_png, request, rgb_of, segment, site
from tests.test_serve import readme_serving

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ray_engine_with_two_replicas_serves_zoo_runs_outputs(model_store, tmp_path):  # noqa: F811
    pytest.importorskip("ray.serve", reason="needs Ray Serve: pip install -e '.[serve-ray]'")
    http = pytest.importorskip("tritonclient.http")
    env, pics, oracle = site(model_store, tmp_path)
    line = next(line for line in readme_serving()[0] if "--engine ray" in line)
    args = shlex.split(line.replace("fcn", NAME))[2:]
    assert args[args.index("--replicas") + 1] == "2"
    with ServeProcess(*args, "--port", str(free_port()), env=env, timeout=600) as server:
        assert "(Ray Serve, 2 replica(s), 2 running)" in "\n".join(server.lines)  # what Ray Serve reports
        for _ in range(3):  # requests spread over the replicas; each must answer as zoo run does
            for stem, path in pics.items():
                status, _, body = segment(server.port, path.read_bytes())
                assert status == 200 and body == oracle[stem]["labels.png"], stem
        client = http.InferenceServerClient(server.address)
        assert client.is_model_ready(NAME)
        rgb = rgb_of(pics["street"])
        tensor = http.InferInput("image", list(rgb.shape), "UINT8")
        tensor.set_data_from_numpy(rgb)
        result = client.infer(NAME, [tensor], outputs=[http.InferRequestedOutput("labels")])
        np.testing.assert_array_equal(result.as_numpy("labels"), decode_png(oracle["street"]["labels.png"]))
        assert request(server.port, "POST", "/v1/models/nope/segment", b"x", {"Content-Type": "image/png"})[0] == 404
        assert server.stop(timeout=180) == 0

