"""Paddle inference model → ONNX, offline, checked before and after, stamped with what a runner needs.

``convert(name)`` takes the cached Paddle model of a registry entry (legacy ``model.pdmodel`` or PIR ``model.json``,
plus ``model.pdiparams``) and:

1. re-hashes program and params against the entry's manifest, and walks the params file's tensor records — paddle2onnx
   turns a missing or truncated params file into a model without those weights and reports success;
2. runs paddle2onnx in a child process (``zoo/make/_p2o_worker.py``): it prints from C++ to fd 1, calls ``sys.exit`` on
   failure and, with its default optimizer, may pip-install; zoo's stdout stays clean and nothing is installed;
3. names the dynamic axes (batch, height, width) and stamps ``metadata_props`` (keys below, prefix ``zoo.``);
4. checks the result (:func:`check_onnx`) and commits it to ``onnx/<key>/model.onnx`` with a ref to it.

The result is cached by (Paddle model key, opset, paddle2onnx and paddle versions, :data:`RECIPE`); a repeat convert
reads two small JSON files, re-hashes the cached .onnx against its manifest (a damaged one is converted again and
replaced) and imports neither paddle nor onnx. paddle2onnx 2.1 output is byte-identical across runs,
and nothing zoo adds varies (no paths, no times), so ``--force`` reproduces the same sha256.

Metadata keys (values are strings; JSON where marked, see :func:`decode_metadata`)::

    zoo.format              "1", the layout of these keys
    zoo.name                registry entry name (a folder converted by path: the manifest's name, if any)
    zoo.paddle_key          cache key of the Paddle model converted
    zoo.paddle_files        JSON {file name: "sha256:<hex>"} of program and params
    zoo.architecture        plugin name
    zoo.input               JSON InputSpec.as_dict(): color, scale, mean, std, size policy, ...
    zoo.output_op           "argmax" (int32 [N, H, W]), "softmax", "none" (logits [N, C, H, W]), or "unknown"
    zoo.num_classes         JSON int
    zoo.labels              JSON [str], class names by id
    zoo.palette             JSON [[r, g, b]], colour by class id
    zoo.opset               JSON int, the model's ai.onnx opset
    zoo.zoo_version, zoo.paddle_version, zoo.paddle2onnx_version
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import config
from zoo.registry import catalog, plugins
from zoo.store import cache
from zoo.errors import ConversionError, IntegrityError, NotCachedError
from zoo.formats.onnx_meta import JSON_KEYS, PREFIX, check_onnx, decode_metadata, read_metadata  # noqa: F401 (their home moved)
from zoo.formats.params import check_params
from zoo.util import OUTPUT_OPS  # noqa: F401

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

DEFAULT_OPSET = 11
ONNX_FILE = "model.onnx"
METADATA_FORMAT = "1"
RECIPE = 1  # bump when zoo's own processing of paddle2onnx's output changes: it invalidates cached conversions
WORKER = Path(__file__).with_name("_p2o_worker.py")


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert` produced or found."""

    name: str  # registry entry
    path: Path  # the .onnx file in the cache
    sha256: str  # "sha256:<hex>" of that file
    cached: bool  # True: an earlier conversion was reused
    seconds: float  # wall time of this call
    opset: int = DEFAULT_OPSET  # opset asked for (part of the cache key)
    source: str = ""  # cache key of the Paddle model it came from

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "sha256": self.sha256, "cached": self.cached,
            "seconds": round(self.seconds, 3), "opset": self.opset, "from": self.source,
        }  # fmt: skip


# ---- public API ------------------------------------------------------------------------------------------------------


def convert(model: ModelHandle | str, *, opset: int = DEFAULT_OPSET, force: bool = False) -> ConvertResult:
    """Convert the cached Paddle model of ``model`` to ONNX (or reuse an earlier conversion); point its ref at it."""
    start = time.perf_counter()
    handle = catalog.handle(model)
    name = handle.name
    folder = cache.paddle_model_dir(name)
    wanted = {"source": "converted", "from": folder.name, "opset": opset, "converter": _converter(), "recipe": RECIPE}
    if not force and (hit := _find_cached(name, wanted)) is not None and _intact(hit):
        return _result(name, hit, wanted, cached=True, start=start)

    from zoo.store import locks, repair

    with locks.hold(cache.locks_dir() / f"onnx-{folder.name}.lock"):
        if not force and (hit := _find_cached(name, wanted)) is not None and _intact(hit):  # another process did it
            return _result(name, hit, wanted, cached=True, start=start)
        program, params = _check_source(folder, repair.advice(name, "paddle"))
        arch = handle.architecture
        manifest = cache.read_manifest(folder)
        provenance = {**manifest.get("provenance", {}), **cache.get_ref(name).get("paddle", {})}
        num_classes = (handle.entry.num_classes if handle.entry else None) or provenance.get("num_classes")
        meta = _source_metadata(manifest, program, params)
        meta.update(name=name, **_arch_metadata(arch, num_classes))
        meta["output_op"] = provenance.get("output_op")
        if num_classes:
            meta["num_classes"] = num_classes
        with cache.staging(cache.onnx_dir()) as stage:
            data = _finish(_run_paddle2onnx(program, params, opset), meta)
            (stage / ONNX_FILE).write_bytes(data)
            check_onnx(stage / ONNX_FILE)
            record = {**wanted, "name": name, "output_op": meta["output_op"], "zoo": _zoo_version()}
            final = cache.commit_tree(stage, cache.onnx_dir(), record)
        return _result(name, final, wanted, cached=False, start=start)


def convert_model_dir(folder: Path, out: Path, *, opset: int = DEFAULT_OPSET, architecture: str | None = None) -> None:
    """Convert the Paddle model in a plain folder to the file ``out`` (written atomically; the cache is untouched).

    The folder's ``manifest.json`` (a cache entry) is checked if present and supplies name, architecture and output
    op; else zoo's ``deploy.yaml`` (``Deploy.output_op``, ``Deploy.input``) does. ``architecture`` names the plugin
    whose input spec, labels and palette are stamped.
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise NotCachedError(
            f"{folder} is not a folder; pass a folder holding model.json|model.pdmodel and model.pdiparams"
        )
    manifest: dict[str, Any] = {}
    if (folder / cache.MANIFEST).is_file():
        manifest = cache.read_manifest(folder)
    program, params = _check_source(folder, "copy or download the model again", verify=bool(manifest))
    provenance = manifest.get("provenance", {})
    arch_name = architecture or provenance.get("architecture")
    num_classes = provenance.get("num_classes")
    meta = _source_metadata(manifest, program, params)
    if provenance.get("name"):
        meta["name"] = provenance["name"]
    deploy = _deploy(folder)
    if arch_name:
        meta.update(_arch_metadata(plugins.get_architecture(arch_name), num_classes))
    elif isinstance(deploy.get("input"), dict):
        meta["input"] = deploy["input"]
    meta["output_op"] = provenance.get("output_op") or deploy.get("output_op")
    if num_classes:
        meta["num_classes"] = num_classes
    out.parent.mkdir(parents=True, exist_ok=True)
    data = _finish(_run_paddle2onnx(program, params, opset, out.parent), meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".incomplete", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        check_onnx(Path(tmp))
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# ---- steps -----------------------------------------------------------------------------------------------------------


def _check_source(folder: Path, hint: str, *, verify: bool = True) -> tuple[Path, Path]:
    """Program and params of a model folder, hashed against its manifest (if ``verify``) and walked."""
    program = cache.program_file(folder)
    params = folder / cache.PARAMS_FILE
    if verify:
        try:
            cache.verify_files(folder, [program.name, params.name], hint)
        except IntegrityError as exc:
            raise IntegrityError(f"refusing to convert: {exc}") from None
    if not params.is_file():
        raise IntegrityError(f"refusing to convert: {folder} has no {params.name}; {hint}")
    check_params(params, hint)
    return program, params


def _run_paddle2onnx(program: Path, params: Path, opset: int, scratch_parent: Path | None = None) -> bytes:
    """paddle2onnx's model bytes, from a child process whose output is captured (shown on failure).

    Its files go to a ``.staging-*`` folder in ``scratch_parent`` (default: the cache's onnx/), removed afterwards.
    """
    with cache.staging(scratch_parent or cache.onnx_dir()) as scratch:
        out = scratch / "raw.onnx"
        (scratch / "tmp").mkdir()
        argv = [str(program), str(params), str(out), str(opset), str(scratch / "tmp")]
        proc = subprocess.run(
            [sys.executable, "-P", str(WORKER), *argv],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", cwd=scratch, check=False,
        )  # fmt: skip
        log = _strip_ansi(proc.stdout + proc.stderr)
        if config.debug():
            print(log, file=sys.stderr)
        if proc.returncode != 0 or not out.is_file():
            raise ConversionError(
                f"paddle2onnx failed on {program} (exit {proc.returncode}): {_log_tail(log)}; "
                "run with ZOO_DEBUG=1 for its full output"
            )
        return out.read_bytes()


def _finish(raw: bytes, meta: dict[str, Any]) -> bytes:
    """Name dynamic axes, fill in the output op if unknown, stamp ``zoo.*`` metadata; deterministic bytes."""
    import onnx

    model = onnx.load_from_string(raw)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    for value in inputs:
        _name_axes(value, {0: "batch", 2: "height", 3: "width"})
    for value in graph.output:
        rank = len(value.type.tensor_type.shape.dim)
        _name_axes(value, {0: "batch", 1: "height", 2: "width"} if rank == 3 else {0: "batch", 2: "height", 3: "width"})
    if meta.get("output_op") not in OUTPUT_OPS:
        meta["output_op"] = _infer_output_op(model)
    if not meta.get("num_classes") and meta["output_op"] != "argmax":
        dims = graph.output[0].type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].dim_value > 0:
            meta["num_classes"] = dims[1].dim_value
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    meta.update(
        format=METADATA_FORMAT, opset=opset, zoo_version=_zoo_version(), paddle_version=_paddle_version(),
        paddle2onnx_version=_dist_version("paddle2onnx"),
    )  # fmt: skip
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key in sorted(meta):
        value = meta[key]
        if value is None:
            continue
        text = json.dumps(value, separators=(",", ":")) if key in JSON_KEYS else str(value)
        model.metadata_props.add(key=PREFIX + key, value=text)
    model.producer_name = "paddle2onnx"
    model.producer_version = _dist_version("paddle2onnx")
    return model.SerializeToString()


def _name_axes(value: Any, names: dict[int, str]) -> None:
    dims = value.type.tensor_type.shape.dim
    for index, name in names.items():
        if index < len(dims) and dims[index].dim_value <= 0:
            dims[index].dim_param = name


def _infer_output_op(model: Any) -> str:
    """argmax for an integer output; softmax if a Softmax node makes it; else unknown (logits or probabilities)."""
    import onnx

    output = model.graph.output[0]
    if output.type.tensor_type.elem_type in (onnx.TensorProto.INT32, onnx.TensorProto.INT64):
        return "argmax"
    producer = next((n for n in model.graph.node if output.name in n.output), None)
    return "softmax" if producer is not None and producer.op_type == "Softmax" else "unknown"


def _source_metadata(manifest: dict[str, Any], program: Path, params: Path) -> dict[str, Any]:
    files = {p.name: (manifest.get("files", {}).get(p.name) or {}).get("sha256") or cache.sha256_file(p)
             for p in (program, params)}  # fmt: skip
    key = manifest.get("key") or cache.tree_key({n: {"sha256": s} for n, s in files.items()})
    return {"paddle_key": key, "paddle_files": files}


def _arch_metadata(arch: Any, num_classes: int | None) -> dict[str, Any]:
    n = num_classes or len(arch.labels)
    return {
        "architecture": arch.name,
        "input": arch.input.as_dict(),
        "labels": list(arch.labels),
        "palette": [list(c) for c in arch.colors(n)[: max(n, len(arch.labels))]],
    }


def _deploy(folder: Path) -> dict[str, Any]:
    """The ``Deploy`` table of a folder's deploy.yaml ({} if none or unreadable)."""
    path = folder / "deploy.yaml"
    if not path.is_file():
        return {}
    import yaml

    with contextlib.suppress(Exception):
        doc = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("Deploy")
        return doc if isinstance(doc, dict) else {}
    return {}


# ---- the cache -------------------------------------------------------------------------------------------------------


def _find_cached(name: str, wanted: dict[str, Any]) -> Path | None:
    """An onnx/ entry converted from the same source with the same settings: the ref's, or any other."""

    def matches(record: dict[str, Any]) -> bool:
        return all(record.get(k) == v for k, v in wanted.items())

    ref = cache.get_ref(name).get("onnx") or {}
    if matches(ref) and ref.get("key") and (cache.onnx_dir() / ref["key"] / cache.MANIFEST).is_file():
        return cache.onnx_dir() / ref["key"]
    if not cache.onnx_dir().is_dir():
        return None
    for folder in sorted(cache.onnx_dir().iterdir()):
        manifest_path = folder / cache.MANIFEST
        if folder.name.startswith(".") or not manifest_path.is_file():
            continue
        with contextlib.suppress(ValueError, OSError):
            provenance = cache.read_json(manifest_path).get("provenance", {})
            if matches(provenance) and provenance.get("name") == name:
                return folder
    return None


def _intact(folder: Path) -> bool:
    """Whether a cached conversion still matches its manifest (re-hashed: it is reported as the model to use)."""
    try:
        return not cache.check_tree(folder)
    except (OSError, ValueError, KeyError, NotCachedError):
        return False


def _result(name: str, folder: Path, wanted: dict[str, Any], *, cached: bool, start: float) -> ConvertResult:
    """Point the ref at ``folder`` (if it does not already) and describe it."""
    sha = cache.read_manifest(folder)["files"][ONNX_FILE]["sha256"]
    ref = cache.get_ref(name).get("onnx") or {}
    if ref.get("key") != folder.name or ref.get("sha256") != sha:
        cache.set_ref(name, "onnx", {"key": folder.name, "file": ONNX_FILE, "sha256": sha, **wanted})
    return ConvertResult(name, folder / ONNX_FILE, sha, cached, time.perf_counter() - start,
                         opset=wanted["opset"], source=wanted["from"])  # fmt: skip


# ---- small helpers ---------------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+\]\s*")  # paddle2onnx's log prefix


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _log_tail(log: str) -> str:
    """The last lines of a child's output that say something: its error lines if it has any."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "warn" not in ln.lower()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join(_STAMP.sub("", ln) for ln in (errors or lines)[-3:]) or "no output"


def _dist_version(*names: str) -> str:
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            return version(name)
    return "unknown"


def _zoo_version() -> str:
    from zoo import util

    return util.version()


def _converter() -> str:
    """What the cache key records about the converter."""
    return f"paddle2onnx {_dist_version('paddle2onnx')}, paddlepaddle {_paddle_version()}"


def _paddle_version() -> str:
    return _dist_version("paddlepaddle", "paddlepaddle-gpu")
