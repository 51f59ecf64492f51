"""Small helpers several modules need: one home each, so they cannot drift apart.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

MODEL_NAME = re.compile(r"\A[a-z0-9][a-z0-9._-]*\Z")  # registry names; only these ever become cache paths
SHA256 = re.compile(r"\Asha256:[0-9a-f]{64}\Z")  # how zoo writes a digest everywhere: "sha256:<64 lowercase hex>"
CHUNK = 1 << 20  # bytes read at a time when hashing
OUTPUT_OPS = ("argmax", "softmax", "none")  # what an exported graph ends with: class ids, probabilities, logits


def version() -> str:
    """zoo's installed version (``0.0.0+unknown`` from a source tree never installed); ``zoo.__version__`` is this."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("zoo")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (``512x1024``, ``512X1024`` or ``512×1024``) → (height, width); ValueError unless both are positive."""
    parts = re.split(r"[xX×]", text.strip())
    try:
        h, w = (int(v) for v in parts)
    except ValueError:
        h = w = 0
    if len(parts) != 2 or h < 1 or w < 1:
        raise ValueError(f"expected HxW with positive numbers, such as 512x1024, got {text!r}")
    return h, w


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): errors stay one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (what manifests, refs and pins record)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_file(path: Path) -> str:
    """'sha256:<hex>' of a file's bytes."""
    import hashlib  # stdlib modules `zoo list` never needs stay out of the CLI's start-up

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """'sha256:<hex>' of some bytes."""
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux reports them (``avx512_vnni``, ``avx512_bf16``, ...); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def peak_rss_mb() -> float:
    """Peak resident memory so far, in MB: of this process or of its largest finished child (a conversion worker)."""
    import resource
    import sys

    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)  # bytes on macOS, KiB on Linux


INT_LIST = re.compile(r"\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]")  # a list of integers as json.dumps(indent=) lays it out


def json_text(obj: object) -> str:
    """``obj`` as JSON indented by 2, each list of integers on one line (a confusion matrix reads a row per line,
    not a number per line). Only layout whitespace changes: a JSON string never holds a raw newline."""
    import json

    text = json.dumps(obj, indent=2, default=str)
    return INT_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\n\s*", m.group(1))) + "]", text)
