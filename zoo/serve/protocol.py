"""The KServe v2 (Open Inference Protocol) REST messages zoo serve reads and writes.

One input tensor per request, either

* ``UINT8`` of shape ``[H, W, 3]`` (or ``[1, H, W, 3]``): RGB pixels, or
* ``BYTES`` of shape ``[1]``: an encoded image (PNG, JPEG, ... whatever zoo run reads), base64 in JSON.

Outputs, by name (``labels`` when the request names none): ``labels`` — class ids ``[H, W]`` (UINT8, INT32 past
255 classes); ``color`` — the colour mask ``[H, W, 3]`` UINT8; ``labels_png`` — ``[1]`` BYTES, the label PNG file
zoo run writes. Both JSON ``data`` and Triton's binary-tensor extension (``Inference-Header-Content-Length``: a JSON
header followed by raw tensors, what ``tritonclient`` sends by default) are read and written.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import RequestError

if TYPE_CHECKING:
    import numpy as np

HEADER_LENGTH = "inference-header-content-length"  # the binary extension's header (lower case, as ASGI gives it)
OUTPUTS = ("labels", "color", "labels_png")
INPUT_NAME = "image"
_NP = {"UINT8": "uint8", "UINT16": "uint16", "INT32": "int32", "INT64": "int64"}  # KServe datatype → numpy


@dataclass
class InferRequest:
    """One parsed request: the image (pixels or encoded bytes) and what to send back."""

    id: str | None  # echoed in the response
    rgb: np.ndarray | None = None  # [H, W, 3] uint8 from a UINT8 tensor
    encoded: bytes | None = None  # image file bytes from a BYTES tensor
    outputs: dict[str, bool] = field(default_factory=lambda: {"labels": False})  # name → send as binary


def bad(message: str) -> RequestError:
    return RequestError(400, message)


def parse_infer(body: bytes, header_length: str | None, max_pixels: int) -> InferRequest:
    """A v2 infer request body (JSON, or JSON header + binary tensors) → :class:`InferRequest`; 400/413 if not."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise bad(f"Inference-Header-Content-Length must be a number of bytes, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise bad(f"Inference-Header-Content-Length {size} does not fit a body of {len(body)} bytes")
        header, binary = _json(body[:size]), memoryview(body)[size:]
    else:
        header, binary = _json(body), memoryview(b"")
    if not isinstance(header, dict):
        raise bad("the request must be a JSON object with 'inputs'")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad(f"give exactly one input tensor ('{INPUT_NAME}': UINT8 [H,W,3] or BYTES [1]), "
                  f"got {len(inputs) if isinstance(inputs, list) else 'no'} inputs")  # fmt: skip
    tensor = inputs[0]
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad("an input's 'parameters' must be an object")
    if "binary_data_size" in params:
        n = params["binary_data_size"]
        if not isinstance(n, int) or n < 0 or n > len(binary):
            raise bad(f"binary_data_size {n!r} does not fit the {len(binary)} bytes after the JSON header")
        raw: bytes | list[Any] = bytes(binary[:n])
    elif "data" in tensor:
        raw = tensor["data"]
    else:
        raise bad("the input tensor has neither 'data' nor a binary_data_size parameter")
    request = InferRequest(id=header.get("id") if isinstance(header.get("id"), str) else None)
    request.outputs = _requested(header)
    dtype, shape = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise bad(f"the input's shape must be a list of sizes, got {shape!r}")
    if dtype == "UINT8":
        request.rgb = _pixels(raw, shape, max_pixels)
    elif dtype == "BYTES":
        request.encoded = _one_blob(raw, shape)
    else:
        raise bad(f"the input's datatype is {dtype!r}; send UINT8 pixels [H,W,3] or an encoded image as BYTES [1]")
    return request


def _json(data: bytes | memoryview) -> Any:
    try:
        return json.loads(bytes(data))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"the request is not valid JSON ({exc})") from None


def _requested(header: dict[str, Any]) -> dict[str, bool]:
    default_binary = bool((header.get("parameters") or {}).get("binary_data_output", False))
    asked = header.get("outputs")
    if asked is None:
        return {"labels": default_binary}
    if not isinstance(asked, list) or not asked:
        raise bad(f"'outputs' must be a list of {{'name': ...}} with names from {', '.join(OUTPUTS)}")
    wanted: dict[str, bool] = {}
    for item in asked:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUTS:
            raise bad(f"unknown output {name!r}; this model gives {', '.join(OUTPUTS)}")
        wanted[name] = bool((item.get("parameters") or {}).get("binary_data", default_binary))
    return wanted


def _pixels(raw: bytes | list[Any], shape: list[int], max_pixels: int) -> np.ndarray:
    import numpy as np

    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or shape[2] != 3:
        raise bad(f"a UINT8 image tensor has shape [H, W, 3] (RGB), got {shape}")
    h, w, _ = shape
    if h < 1 or w < 1:
        raise bad(f"the image tensor is empty ({h}x{w})")
    if h * w > max_pixels:
        raise RequestError(413, f"the image has {h}x{w} = {h * w / 1e6:.0f} megapixels; zoo segments images up to "
                                f"{max_pixels // 1_000_000} megapixels — downscale or tile it first")  # fmt: skip
    if isinstance(raw, bytes):
        if len(raw) != h * w * 3:
            raise bad(f"the tensor [{h}, {w}, 3] needs {h * w * 3} bytes, the request has {len(raw)}")
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    try:
        values = np.asarray(raw)
    except ValueError:
        raise bad("the tensor's 'data' is not a regular list of numbers") from None
    if values.size != h * w * 3 or not np.issubdtype(values.dtype, np.integer):
        raise bad(f"the tensor [{h}, {w}, 3] needs {h * w * 3} integers in 'data', got {values.size} "
                  f"{values.dtype} values")  # fmt: skip
    if values.size and (values.min() < 0 or values.max() > 255):
        raise bad("UINT8 pixel values must be in 0..255")
    return values.astype(np.uint8).reshape(h, w, 3)


def _one_blob(raw: bytes | list[Any], shape: list[int]) -> bytes:
    if [d for d in shape if d != 1] or not shape:
        raise bad(f"a BYTES input holds one encoded image: shape [1], got {shape}")
    if isinstance(raw, bytes):  # the binary extension: a 4-byte little-endian length before each element
        if len(raw) < 4:
            raise bad("the BYTES tensor is shorter than its 4-byte length prefix")
        (n,) = struct.unpack_from("<I", raw)
        if n != len(raw) - 4:
            raise bad(f"the BYTES element says {n} bytes but {len(raw) - 4} follow; send exactly one image")
        return raw[4:]
    if len(raw) != 1 or not isinstance(raw[0], str):
        raise bad("a BYTES input in JSON is one base64 string: \"data\": [\"<base64 of the image file>\"]")
    try:
        return base64.b64decode(raw[0], validate=True)
    except ValueError:
        raise bad("the BYTES input is not valid base64") from None


def infer_response(model: str, request: InferRequest, results: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The v2 response for ``results`` (name → numpy array or bytes), JSON or JSON + binary; and its headers."""
    import numpy as np

    outputs, blobs = [], []
    for name, binary in request.outputs.items():
        value = results[name]
        if isinstance(value, bytes):
            item: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [1]}
            if binary:
                blob = struct.pack("<I", len(value)) + value
            else:
                item["data"] = [base64.b64encode(value).decode("ascii")]
        else:
            array = np.ascontiguousarray(value)
            kind = next(k for k, v in _NP.items() if v == array.dtype.name)
            item = {"name": name, "datatype": kind, "shape": list(array.shape)}
            if binary:
                blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            else:
                item["data"] = array.reshape(-1).tolist()
        if binary:
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        outputs.append(item)
    doc: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def model_metadata(name: str, platform: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the tensors a client sends and gets back."""
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, -1, 3]}],
        "outputs": [
            {"name": "labels", "datatype": "UINT8", "shape": [-1, -1]},
            {"name": "color", "datatype": "UINT8", "shape": [-1, -1, 3]},
            {"name": "labels_png", "datatype": "BYTES", "shape": [1]},
        ],
    }
