"""zoo serve against real clients: tritonclient's KServe v2 client, plain HTTP, and the README's own examples.

Every expected output is a file `zoo run` wrote for the same image (tests/serving.py): the label PNG bytes, the colour
PNG, the overlay JPEG and the class shares; labels are compared exactly. The server is the real `zoo serve` in a
subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import REPO, run_zoo
from tests.models import model_store  # noqa: F401 - fixture
from tests.serving import NAME, ServeProcess, classes_of, decode_png, request, rgb_of, segment, site

http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def served(model_store, tmp_path_factory):  # noqa: F811
    env, pics, oracle = site(model_store, tmp_path_factory.mktemp("serve"))
    server = ServeProcess(NAME, "--max-wait-ms", "5", "--log-format", "json", env={**env, "ZOO_OFFLINE": "1"})
    yield server, pics, oracle, env
    assert server.stop() == 0


def test_tritonclient_lists_checks_and_infers_like_zoo_run(served):
    server, pics, oracle, _ = served
    client = http.InferenceServerClient(server.address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "zoo"
    assert [m["name"] for m in client.get_model_repository_index()] == [NAME]
    assert client.is_model_ready(NAME)
    meta = client.get_model_metadata(NAME)
    assert meta["inputs"][0]["datatype"] == "UINT8" and meta["inputs"][0]["shape"] == [-1, -1, 3]
    for stem in ("street", "small"):  # pixels as a UINT8 tensor, outputs in binary (tritonclient's default)
        rgb = rgb_of(pics[stem])
        tensor = http.InferInput("image", list(rgb.shape), "UINT8")
        tensor.set_data_from_numpy(rgb)
        wanted = [http.InferRequestedOutput(n) for n in ("labels", "labels_png", "color")]
        result = client.infer(NAME, [tensor], outputs=wanted)
        expected = decode_png(oracle[stem]["labels.png"])
        assert result.as_numpy("labels").dtype == np.uint8
        np.testing.assert_array_equal(result.as_numpy("labels"), expected)
        assert result.as_numpy("labels_png")[0] == oracle[stem]["labels.png"]
        np.testing.assert_array_equal(result.as_numpy("color"), decode_png(oracle[stem]["color.png"]))
    # an encoded JPEG as a BYTES tensor, outputs as JSON data: decoded by the server exactly as zoo run decodes it
    tensor = http.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([pics["photo"].read_bytes()], dtype=object))
    result = client.infer(NAME, [tensor], outputs=[http.InferRequestedOutput("labels", binary_data=False)])
    np.testing.assert_array_equal(result.as_numpy("labels"), decode_png(oracle["photo"]["labels.png"]))
    with pytest.raises(Exception, match=r"\[404\].*no model 'fcn'"):
        client.infer("fcn", [tensor])


@pytest.mark.parametrize("fmt, kind", [("png", "labels.png"), ("color", "color.png"), ("overlay", "overlay.jpg")])
def test_plain_endpoint_returns_zoo_runs_files(served, fmt, kind):
    server, pics, oracle, _ = served
    for stem, path in pics.items():
        status, headers, body = segment(server.port, path.read_bytes(), fmt)
        assert status == 200, body
        assert body == oracle[stem][kind], f"{stem} ?format={fmt} differs from zoo run's {stem}.{kind}"


def test_plain_endpoint_json_has_zoo_runs_class_shares(served):
    server, pics, oracle, _ = served
    status, headers, body = segment(server.port, pics["street"].read_bytes(), "json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert classes_of(body) == classes_of(oracle["street"]["json"])
    assert json.loads(body)["width"] == 160


def test_metrics_count_requests_errors_batches_and_load_time(served):
    server, pics, _, _ = served
    segment(server.port, pics["small"].read_bytes())
    request(server.port, "POST", "/v1/models/nope/segment", b"x", {"Content-Type": "image/png"})
    status, headers, body = request(server.port, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert re.search(rf'zoo_requests_total{{model="{NAME}",route="segment",code="200"}} [1-9]', text)
    assert re.search(r'zoo_request_errors_total{model="nope",code="404"} [1-9]', text)
    assert re.search(rf'zoo_batch_size_count{{model="{NAME}"}} [1-9]', text)
    assert re.search(rf'zoo_model_load_seconds{{model="{NAME}"}} \d', text)
    assert f'zoo_queue_depth{{model="{NAME}"}} 0' in text
    assert re.search(rf'zoo_request_seconds_bucket{{model="{NAME}",le="\+Inf"}} [1-9]', text)


def test_access_log_is_one_json_line_per_request(served):
    server, pics, _, _ = served
    before, quiet_since = len(server.lines), time.monotonic()
    while time.monotonic() - quiet_since < 0.5:  # a line from the previous test's last request may still be on its way
        time.sleep(0.05)
        if len(server.lines) != before:
            before, quiet_since = len(server.lines), time.monotonic()
    request(server.port, "GET", "/v2/health/live")
    request(server.port, "GET", "/v2/models/nope")
    for _ in range(50):  # the log line is written as the response goes out; give the reader thread a moment
        logged = [json.loads(line) for line in server.lines[before:] if line.startswith("{")]
        if len(logged) >= 2:
            break
        time.sleep(0.1)
    assert [(e["method"], e["path"], e["status"]) for e in logged] == [
        ("GET", "/v2/health/live", 200), ("GET", "/v2/models/nope", 404)]  # fmt: skip
    assert logged[1]["model"] == "nope" and logged[0]["ms"] >= 0


def test_batched_requests_give_the_same_outputs(model_store, tmp_path):  # noqa: F811
    """Concurrent requests batched together (a long --max-wait-ms) give each image's own zoo run result."""
    from concurrent.futures import ThreadPoolExecutor

    env, pics, oracle = site(model_store, tmp_path)
    with ServeProcess(NAME, "--max-batch", "8", "--max-wait-ms", "300", env=env) as server:
        jobs = [pics[s] for s in ("street", "small", "street", "photo", "small", "street")]
        with ThreadPoolExecutor(len(jobs)) as pool:
            replies = list(pool.map(lambda p: segment(server.port, p.read_bytes()), jobs))
        for path, (status, _, body) in zip(jobs, replies, strict=True):
            assert status == 200 and body == oracle[path.stem]["labels.png"]
        metrics = request(server.port, "GET", "/metrics")[2].decode()
        buckets = dict(re.findall(rf'zoo_batch_size_bucket{{model="{NAME}",le="(\d+)"}} (\d+)', metrics))
        assert int(buckets["1"]) < 6, "no two requests were batched together"
        assert server.stop() == 0


def test_token_auth(model_store, tmp_path):  # noqa: F811
    env, pics, oracle = site(model_store, tmp_path)
    with ServeProcess(NAME, env={**env, "ZOO_SERVE_TOKEN": "s3cret"}) as server:
        body = pics["small"].read_bytes()
        status, headers, reply = segment(server.port, body)
        assert status == 401 and headers["www-authenticate"] == "Bearer" and b"missing" in reply
        assert request(server.port, "POST", f"/v1/models/{NAME}/segment", body,
                       {"Authorization": "Bearer wrong"})[0] == 401  # fmt: skip
        assert request(server.port, "GET", "/metrics")[0] == 401
        assert request(server.port, "GET", "/v2/health/ready")[0] == 200  # probes need no token
        status, _, reply = request(server.port, "POST", f"/v1/models/{NAME}/segment", body,
                                   {"Authorization": "Bearer s3cret", "Content-Type": "image/png"})  # fmt: skip
        assert status == 200 and reply == oracle["small"]["labels.png"]


def test_tls(model_store, tmp_path):  # noqa: F811
    import ssl
    import urllib.request

    env, pics, oracle = site(model_store, tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    with ServeProcess(NAME, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), env=env) as server:
        assert server.scheme == "https"
        context = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(f"https://127.0.0.1:{server.port}/v1/models/{NAME}/segment",
                                     data=pics["small"].read_bytes(), headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(req, context=context, timeout=60) as reply:
            assert reply.read() == oracle["small"]["labels.png"]
        with pytest.raises(Exception):  # plain HTTP on the TLS port is no way in
            request(server.port, "GET", "/v2/health/ready", timeout=10)


def test_v2_json_tensors_without_the_binary_extension(served):
    """A client that speaks plain JSON (curl, any language): UINT8 data in, labels and colour as JSON data out."""
    server, pics, oracle, _ = served
    rgb = rgb_of(pics["small"])
    body = json.dumps({"id": "r1", "inputs": [{"name": "image", "shape": list(rgb.shape), "datatype": "UINT8",
                                               "data": rgb.reshape(-1).tolist()}],
                       "outputs": [{"name": "labels"}, {"name": "color"}]}).encode()  # fmt: skip
    status, headers, reply = request(server.port, "POST", f"/v2/models/{NAME}/versions/1/infer", body,
                                     {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(reply)
    assert doc["model_name"] == NAME and doc["id"] == "r1"
    outputs = {o["name"]: o for o in doc["outputs"]}
    expected = decode_png(oracle["small"]["labels.png"])
    assert outputs["labels"]["datatype"] == "UINT8" and outputs["labels"]["shape"] == list(expected.shape)
    np.testing.assert_array_equal(np.array(outputs["labels"]["data"]).reshape(expected.shape), expected)
    color = np.array(outputs["color"]["data"], np.uint8).reshape(outputs["color"]["shape"])
    np.testing.assert_array_equal(color, decode_png(oracle["small"]["color.png"]))


def test_without_the_serve_extra_the_error_names_it(tmp_path):
    """Starlette made unimportable (a module that raises ImportError first on the path): one line naming the extra."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "starlette.py").write_text("raise ImportError('blocked for this test', name='starlette')\n")
    path = os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])
    proc = run_zoo("serve", "fcn", "--port", "0", env={"PYTHONPATH": path}, timeout=120)
    assert proc.returncode == 1
    assert "zoo: error: zoo serve needs the 'serve' extra (starlette is not installed); run: pip install 'zoo[serve]'" \
        in proc.stderr  # fmt: skip


def test_a_taken_port_and_tls_with_ray_are_one_line_errors(served):
    server, _, _, env = served
    proc = run_zoo("serve", NAME, "--port", str(server.port), env=env, timeout=120)
    assert proc.returncode == 1
    assert f"zoo: error: cannot listen on 127.0.0.1:{server.port}: Address already in use; choose another with " \
        "--host/--port" in proc.stderr  # fmt: skip
    proc = run_zoo("serve", NAME, "--engine", "ray", "--ssl-certfile", "cert.pem", env=env, timeout=120)
    assert proc.returncode == 1 and "--ssl-certfile/--ssl-keyfile work with --engine local only" in proc.stderr


def test_missing_model_is_an_error_at_start_up_naming_the_command(tmp_path):
    proc = run_zoo("serve", "fcn", "--port", "0", env={"ZOO_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 1
    assert "not in the cache" in proc.stderr and "'zoo pull fcn'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) < 400


def readme_serving() -> tuple[list[str], list[str], str]:
    """The README's "Serving" section: its `zoo serve` command lines, its curl lines, its Python example."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Serving", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(bash|python)\n(.*?)```", section, re.S)
    shell = [line.split("  #")[0].strip() for lang, code in blocks if lang == "bash" for line in code.splitlines()]
    serve = [line for line in shell if line.startswith("zoo serve")]
    curl = [line for line in shell if line.startswith("curl")]
    return serve, curl, "\n".join(code for lang, code in blocks if lang == "python")


def test_readme_serving_examples_run(model_store, tmp_path):  # noqa: F811
    """The README's serve command started as printed, then its curl and tritonclient examples run against it
    (with this test's model name for 'fcn', and the port it got for 8080)."""
    import os
    import shlex
    import sys

    env, pics, oracle = site(model_store, tmp_path)
    serve, curl, python = readme_serving()
    assert serve[0] == "zoo serve fcn" and any("--engine ray" in line for line in serve) and curl and python
    args = shlex.split(serve[0].replace("fcn", NAME))[2:]
    with ServeProcess(*args, env=env) as server:

        def localise(code: str) -> str:
            return code.replace("localhost:8080", server.address).replace("/fcn/", f"/{NAME}/").replace('"fcn"', f'"{NAME}"')

        work = tmp_path / "client"
        work.mkdir()
        (work / "street.png").write_bytes(pics["street"].read_bytes())
        for line in curl:
            subprocess.run(localise(line), shell=True, cwd=work, check=True, timeout=60)
        assert (work / "street.labels.png").read_bytes() == oracle["street"]["labels.png"]
        proc = subprocess.run([sys.executable, "-c", localise(python)], cwd=work, capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        expected = decode_png(oracle["street"]["labels.png"])
        assert proc.stdout.strip().splitlines()[-1] == f"{expected.shape} {np.bincount(expected.ravel()).tolist()}"
        assert server.stop() == 0
