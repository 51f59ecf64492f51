"""zoo.serve.protocol and zoo.serve.metrics without a server: the wire formats checked by other people's code.

tritonclient encodes the requests zoo parses and decodes the responses zoo writes (the binary-tensor extension and
plain JSON); prometheus_client's own parser reads the /metrics text.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import RequestError
from zoo.serve import protocol
from zoo.serve.metrics import Metrics

http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (pip install -e '.[test]')")

PIXELS = 1 << 20


def encoded(inputs: list, outputs: list | None = None, request_id: str = "") -> tuple[bytes, str | None]:
    body, json_size = http.InferenceServerClient.generate_request_body(inputs, outputs, request_id=request_id)
    return body, None if json_size is None else str(json_size)


def test_uint8_tensor_from_tritonclient_binary_and_json():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for binary in (True, False):
        tensor = http.InferInput("image", [5, 7, 3], "UINT8")
        tensor.set_data_from_numpy(rgb, binary_data=binary)
        wanted = [http.InferRequestedOutput("labels", binary_data=binary), http.InferRequestedOutput("color")]
        body, header = encoded([tensor], wanted, request_id="abc")
        assert (header is not None) == binary
        parsed = protocol.parse_infer(body, header, PIXELS)
        np.testing.assert_array_equal(parsed.rgb, rgb)
        assert parsed.encoded is None and parsed.id == "abc"
        assert parsed.outputs == {"labels": binary, "color": True}


def test_bytes_tensor_from_tritonclient():
    blob = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
    tensor = http.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([blob], dtype=object))
    body, header = encoded([tensor])
    parsed = protocol.parse_infer(body, header, PIXELS)
    # no outputs named: tritonclient asks for binary_data_output, and gets the default output that way
    assert parsed.encoded == blob and parsed.rgb is None and parsed.outputs == {"labels": True}


@pytest.mark.parametrize("binary", [True, False])
def test_response_read_back_by_tritonclient(binary):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    color = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    png = b"\x89PNG fake"
    request = protocol.InferRequest(id="r7", outputs={"labels": binary, "color": binary, "labels_png": binary})
    body, headers = protocol.infer_response("m", request, {"labels": labels, "color": color, "labels_png": png})
    header = headers.get(protocol.HEADER_LENGTH)
    assert (header is not None) == binary
    result = http.InferResult.from_response_body(body, header_length=None if header is None else int(header))
    np.testing.assert_array_equal(result.as_numpy("labels"), labels)
    np.testing.assert_array_equal(result.as_numpy("color"), color)
    if binary:  # tritonclient turns JSON BYTES data into str; the binary form keeps the bytes
        assert result.as_numpy("labels_png")[0] == png
    assert result.get_response()["id"] == "r7" and result.get_response()["model_name"] == "m"


@pytest.mark.parametrize("shape, dtype, status, words", [
    ([4, 4, 4], "UINT8", 400, "[H, W, 3]"),
    ([4, 4], "UINT8", 400, "[H, W, 3]"),
    ([2, 4, 4, 3], "UINT8", 400, "[H, W, 3]"),
    ([4, 4, 3], "FP32", 400, "datatype"),
    ([0, 4, 3], "UINT8", 400, "empty"),
    ([2048, 1024, 3], "UINT8", 413, "megapixels"),
    ([2], "BYTES", 400, "one encoded image"),
])  # fmt: skip
def test_bad_tensors(shape, dtype, status, words):
    import json

    count = int(np.prod(shape)) if dtype != "BYTES" else 2
    data = ["aGk="] * count if dtype == "BYTES" else [1] * min(count, 48)
    body = json.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": dtype, "data": data}]}).encode()
    with pytest.raises(RequestError) as caught:
        protocol.parse_infer(body, None, PIXELS)
    assert caught.value.status == status and words in str(caught.value)


def test_binary_header_lengths_that_do_not_fit():
    with pytest.raises(RequestError, match="does not fit"):
        protocol.parse_infer(b'{"inputs": []}', "999", PIXELS)
    with pytest.raises(RequestError, match="number of bytes"):
        protocol.parse_infer(b"{}", "ten", PIXELS)
    body = b'{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}'
    with pytest.raises(RequestError, match="binary_data_size 9"):
        protocol.parse_infer(body + b"\x05\x00\x00\x00ab", str(len(body)), PIXELS)
    with pytest.raises(RequestError, match="says 5 bytes but 2 follow"):
        size = body.replace(b"9", b"6")
        protocol.parse_infer(size + b"\x05\x00\x00\x00ab", str(len(size)), PIXELS)


def test_metrics_text_parses_as_prometheus():
    parser = pytest.importorskip("prometheus_client.parser")
    metrics = Metrics()
    metrics.request("fcn", "infer", 200, 0.02)
    metrics.request("fcn", "infer", 200, 0.3)
    metrics.request("fcn", "segment", 413, 0.001)
    metrics.request("", "other", 401, 0.0005)
    metrics.batch("fcn", 3)
    metrics.load_seconds["fcn"] = 1.25
    metrics.queue_depth["fcn"] = lambda: 2
    families = {f.name: f for f in parser.text_string_to_metric_families(metrics.render())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("zoo_requests_total", (("code", "200"), ("model", "fcn"), ("route", "infer")))] == 2
    assert samples[("zoo_request_errors_total", (("code", "413"), ("model", "fcn")))] == 1
    assert samples[("zoo_request_seconds_bucket", (("le", "0.025"), ("model", "fcn")))] == 2  # 0.001, 0.02
    assert samples[("zoo_request_seconds_bucket", (("le", "+Inf"), ("model", "fcn")))] == 3
    assert samples[("zoo_request_seconds_count", (("model", "fcn"),))] == 3
    assert samples[("zoo_batch_size_bucket", (("le", "4"), ("model", "fcn")))] == 1
    assert samples[("zoo_queue_depth", (("model", "fcn"),))] == 2
    assert samples[("zoo_model_load_seconds", (("model", "fcn"),))] == 1.25
    assert families["zoo_request_seconds"].type == "histogram"
