"""Reduced-precision ONNX variants: static int8 (QDQ) through onnxruntime.quantization, float16 through
onnxconverter-common. :func:`quantize_onnx` is a pure file → file function that returns the variant's provenance.

int8 choices, for this CPU and for ORT's CPU kernels:

* QDQ format (QuantizeLinear/DequantizeLinear pairs around float ops): ORT fuses ``DQ → Conv → Q`` into its integer
  kernels, other engines (OpenVINO) read the same file, and the graph stays a plain ONNX graph.
* activations **uint8** (asymmetric), weights **int8** (symmetric), full 8-bit range. ORT's docs warn that U8S8 can
  overflow on x86 CPUs *without* VNNI: ``vpmaddubsw`` adds two u8×s8 products into a saturating int16. With AVX-512
  VNNI (``vpdpbusd``) the products accumulate straight into int32, so U8S8 is exact there and the fastest pairing ORT
  has. Without VNNI, weights use 7 bits (``reduce_range``) so the int16 sum cannot saturate; which one was chosen is
  recorded in the provenance.
* calibration feeds the plugin's own preprocessing (``zoo.runners.runtime.preprocess`` + the Architecture's InputSpec) of
  real images from a folder, or of synthetic street scenes (``zoo.synthetic``): the ranges are those the model sees.

paddle2onnx 2.1 stores weights as ``Constant`` nodes, not graph initializers; onnxruntime.quantization quantizes
only initializer weights (a Conv whose weight is a Constant output would keep float weights and gain nothing), so
:func:`constants_to_initializers` runs first.

Deterministic: the same source file, calibration tensors and settings give a byte-identical model (the tests check it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import PrecisionError, QuantizationError, ZooError
from zoo.make import calibration as calibration_mod
from zoo.store import artifacts
from zoo.util import cpu_flags, first_line, sha256_file

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from zoo.registry.spec import InputSpec

INSTALL = "pip install 'zoo[quantize]'"
PRECISIONS = tuple(p for kind in artifacts.made_by("quantize") for p in kind.precisions)  # the variants it makes
METHODS = ("minmax", "entropy", "percentile")
PER_CHANNEL_OPSET = 13


def variant_name(precision: str) -> str:
    """The cache variant a precision is stored as (``onnx-int8``, ``onnx-fp16``), from zoo/store/artifacts.py."""
    return artifacts.kind_for("onnx", precision).name


def has_vnni() -> bool:
    """Whether this CPU has a VNNI dot product (AVX-512 VNNI or AVX-VNNI): u8×s8 then accumulates exactly in int32."""
    return not cpu_flags().isdisjoint({"avx512_vnni", "avx_vnni"})


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Move every top-level ``Constant`` node holding a tensor into the graph's initializers (dropping unused ones);
    returns how many moved.

    paddle2onnx 2.1 writes weights as Constant nodes; quantizers and fp16 converters look for initializers.
    """
    from onnx import numpy_helper

    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    keep, moved = [], []
    for node in graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and len(node.output) == 1 and "value" in attr and not node.domain:
            if node.output[0] in used:  # paddle2onnx leaves unused ones behind; ORT would warn about each
                moved.append(numpy_helper.from_array(numpy_helper.to_array(attr["value"].t), name=node.output[0]))
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(moved)
    return len(moved)


def input_spec_of(model: onnx.ModelProto) -> InputSpec:
    """The InputSpec a zoo-converted model carries in its ``zoo.input`` metadata (PaddleSeg's default otherwise)."""
    import json

    from zoo.registry import described
    from zoo.registry.spec import InputSpec

    meta = {p.key: p.value for p in model.metadata_props}
    try:
        return described.input_spec(json.loads(meta["zoo.input"])) if "zoo.input" in meta else InputSpec()
    except (ValueError, TypeError, RecursionError) as exc:
        raise QuantizationError(f"the model's zoo.input metadata is unreadable ({exc}); convert it again "
                                "with 'zoo convert NAME --force'") from exc  # fmt: skip


# ---- the variant ----------------------------------------------------------------------------------------------------


def quantize_onnx(
    src: Path,
    dst: Path,
    *,
    precision: str = "int8",
    calibration: Iterable[np.ndarray] | Path | str | None = None,
    method: str = "minmax",
    per_channel: bool = False,
    exclude: Iterable[str] = (),
    input_spec: InputSpec | None = None,
    reduce_range: bool | None = None,
) -> dict[str, Any]:
    """Write a reduced-precision copy of the ONNX model ``src`` to ``dst``; return its provenance.

    ``precision`` "int8": static QDQ quantization calibrated on ``calibration`` — NCHW float32 tensors already
    preprocessed, or a folder of images preprocessed with ``input_spec`` (default: the model's ``zoo.input``
    metadata). ``exclude``: op types left in float32. ``reduce_range`` None: 7-bit weights only on CPUs without VNNI.
    ``precision`` "fp16": float16 weights and compute, float32 inputs and outputs; calibration is not used.
    """
    import onnx

    src, dst = Path(src), Path(dst)
    if precision not in PRECISIONS:
        raise QuantizationError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    if method not in METHODS:
        raise QuantizationError(f"unknown calibration method '{method}'; choose one of: {', '.join(METHODS)}")
    if not src.is_file():
        raise QuantizationError(f"{src}: no such ONNX model file; run 'zoo convert NAME' first")
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise QuantizationError(f"{src} is not a readable ONNX model ({exc}); convert it again") from exc
    moved = constants_to_initializers(model)
    provenance: dict[str, Any] = {
        "variant": variant_name(precision), "precision": precision, "source_sha256": sha256_file(src),
        "constants_to_initializers": moved,
    }  # fmt: skip
    dst.parent.mkdir(parents=True, exist_ok=True)
    if precision == "fp16":
        provenance.update(_to_fp16(model, dst, exclude))
    else:
        if calibration is None:
            raise QuantizationError("int8 needs calibration data: a folder of images (--calib DIR) or "
                                    "synthetic street scenes (--calib-synthetic N)")  # fmt: skip
        if isinstance(calibration, (str, os.PathLike)):
            folder = Path(calibration)
            if not folder.is_dir():
                raise QuantizationError(f"{folder}: no such folder of calibration images")
            from zoo import progress

            count = len(calibration_mod.calibration_files(folder))
            calibration = progress.steps(calibration_mod.folder_tensors(folder, input_spec or input_spec_of(model)), count,
                                         "calibrating", "images")  # fmt: skip
        provenance.update(_to_int8(model, dst, calibration, method, per_channel, exclude, reduce_range))
    provenance["sha256"] = sha256_file(dst)
    return provenance


def _to_int8(model: onnx.ModelProto, dst: Path, tensors: Iterable[np.ndarray], method: str, per_channel: bool,
             exclude: Iterable[str], reduce_range: bool | None) -> dict[str, Any]:  # fmt: skip
    import onnx
    import onnx.version_converter

    with _needs("int8"):  # onnxruntime.quantization imports ml_dtypes, which onnxruntime does not install
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
        from onnxruntime.quantization.shape_inference import quant_pre_process

    known = sorted(set(QDQRegistry) | set(QLinearOpsRegistry))
    excluded = sorted(set(exclude))
    unknown = [op for op in excluded if op not in known]
    if unknown:
        raise QuantizationError(f"--exclude {','.join(unknown)}: not an op type onnxruntime quantizes; "
                                f"choose among {', '.join(known)}")  # fmt: skip
    op_types = [op for op in known if op not in excluded]
    vnni = has_vnni()
    reduce = (not vnni) if reduce_range is None else bool(reduce_range)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    # opset 13: per-channel needs DequantizeLinear's axis; ORT feeds uint8 to ReduceMax/Min (8-bit from opset 12 on)
    why = "--per-channel" if per_channel else ",".join({n.op_type for n in model.graph.node} & {"ReduceMax", "ReduceMin"})
    if why and opset < PER_CHANNEL_OPSET:
        try:
            model, opset = onnx.version_converter.convert_version(model, PER_CHANNEL_OPSET), PER_CHANNEL_OPSET
        except Exception as exc:
            raise QuantizationError(f"{why} needs opset {PER_CHANNEL_OPSET}, and onnx could not convert this opset "
                                    f"{opset} model: {first_line(exc)}; quantize per tensor, or convert at opset 13") from exc  # fmt: skip
    reader = calibration_mod.CalibrationReader(model.graph.input[0].name, tensors)
    metadata = [(p.key, p.value) for p in model.metadata_props]
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]  # fmt: skip
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    with tempfile.TemporaryDirectory(prefix=".zoo-quantize-", dir=dst.parent) as tmp:
        plain, prepared, out = Path(tmp) / "plain.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(plain))
        del model
        try:
            # shape inference + ORT's basic graph optimisation (BatchNorm folded into Conv), so the weights that get
            # quantised are the ones that run
            quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
            ranges = calibration_mod.calibrate(prepared, Path(tmp), reader, op_types, calib)
            quantize_static(
                str(prepared), str(out), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
                per_channel=per_channel, reduce_range=reduce, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=calib, extra_options=extra,
                calibration_cache_path=str(ranges),
            )  # fmt: skip
        except ZooError:  # a calibration image that cannot be read says so itself
            raise
        except Exception as exc:
            raise QuantizationError(f"onnxruntime.quantization failed: {first_line(exc)}") from exc
        quantized = onnx.load(str(out))
        _set_metadata(quantized, metadata, {"zoo.precision": "int8", "zoo.variant": variant_name("int8")})
        _save(quantized, dst)
    ops: dict[str, int] = {}
    for node in quantized.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "tool": artifacts.kind_for("onnx", "int8").tool, "format": "QDQ", "method": method,
        "per_channel": per_channel, "exclude": excluded, "activation_type": "uint8", "weight_type": "int8",
        "reduce_range": reduce, "vnni": vnni, "opset": opset,
        "calibration": {"sha256": reader.sha256(), "count": reader.count, "shapes": sorted(map(list, reader.shapes))},
        "quantize_linear_nodes": ops.get("QuantizeLinear", 0), "dequantize_linear_nodes": ops.get("DequantizeLinear", 0),
        "versions": _versions("onnxruntime", "onnx"),
    }  # fmt: skip



def _to_fp16(model: onnx.ModelProto, dst: Path, exclude: Iterable[str]) -> dict[str, Any]:
    with _needs("fp16"):
        from onnxconverter_common import float16

    import onnx

    unknown = sorted(op for op in set(exclude) if not onnx.defs.has(op))  # a typo would silently block nothing
    if unknown:
        present = sorted({node.op_type for node in model.graph.node})
        raise QuantizationError(f"--exclude {','.join(unknown)}: not an ONNX op type; this model has "
                                f"{', '.join(present)}")  # fmt: skip
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(exclude))
    metadata = [(p.key, p.value) for p in model.metadata_props]
    try:
        # keep_io_types: callers keep feeding float32 and reading float32 scores (Casts at the edges)
        half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    except Exception as exc:
        raise QuantizationError(f"onnxconverter-common could not convert to float16: {first_line(exc)}") from exc
    _set_metadata(half, metadata, {"zoo.precision": "fp16", "zoo.variant": variant_name("fp16")})
    _save(half, dst)
    return {"tool": artifacts.kind_for("onnx", "fp16").tool, "keep_io_types": True,
            "exclude": sorted(set(exclude)), "versions": _versions("onnxconverter-common", "onnx")}  # fmt: skip


def _set_metadata(model: onnx.ModelProto, original: list[tuple[str, str]], extra: dict[str, str]) -> None:
    """The source's zoo.* metadata (preprocessing, labels, ...) plus what this variant is, in a fixed order."""
    values = dict(original)
    values.update(extra)
    del model.metadata_props[:]
    for key in sorted(values):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, values[key]


def _save(model: onnx.ModelProto, dst: Path) -> None:
    """Check and write atomically: a reader never sees half a model."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise QuantizationError(f"the converted model does not pass onnx.checker: {first_line(exc)}") from exc
    tmp = dst.with_name(f".{dst.name}.incomplete")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)


@contextlib.contextmanager
def _needs(precision: str) -> Iterator[None]:
    """A missing optional package → one line saying which, and the install command."""
    try:
        yield
    except ImportError as exc:
        raise QuantizationError(f"{precision} variants need a package that is not installed ({exc}); "
                                f"run: {INSTALL}") from exc


def _versions(*packages: str) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


# ---- a registry model's variant in the cache ------------------------------------------------------------------------


def check_calibration(precision: str, calib_dir: Path | None, calib_synthetic: int) -> None:
    """Refuse a precision no variant has, or int8 without exactly one calibration set, before anything is made."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{precision}' for a variant; choose one of: {', '.join(PRECISIONS)}")
    if precision == "int8" and (calib_dir is None) == (calib_synthetic < 1):
        raise QuantizationError("int8 needs one calibration set: --calib DIR (images) or --calib-synthetic N "
                                "(synthetic street scenes)")  # fmt: skip


def quantize_model(model: Any, src: Path, *, precision: str = "int8", calib_dir: Path | None = None,
                   calib_synthetic: int = 0, size: tuple[int, int] = (512, 1024), method: str = "minmax",
                   per_channel: bool = False, exclude: Iterable[str] = (), seed: int = 0, force: bool = False,
                   say: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Make the ``onnx-<precision>`` variant of a model (a handle or name) from ``src``, its cached float32 ONNX (what
    ``zoo.make.ensure.ensure(handle, "onnx")`` returns), and store it in the cache as a variant; returns what was
    stored (path, key, seconds, provenance, and ``cached``: True when the same variant from the same ONNX model and
    request was there already, unless ``force``). The provenance's ``settings`` are the options that make it again.
    ``say`` hears what is about to happen."""
    import tempfile
    import time

    from zoo import progress
    from zoo.make import space
    from zoo.registry import catalog
    from zoo.store import cache

    say = say or (lambda _message: None)
    start = time.perf_counter()
    handle = catalog.handle(model)
    spec = handle.architecture.input
    check_calibration(precision, calib_dir, calib_synthetic)
    if method not in METHODS:
        raise QuantizationError(f"unknown calibration method '{method}'; choose one of: {', '.join(METHODS)}")
    if calib_dir is not None and not Path(calib_dir).is_dir():
        raise QuantizationError(f"{calib_dir}: no such folder of calibration images")
    variant = variant_name(precision)
    request = calibration_mod.request(precision, calib_dir, calib_synthetic, size, method, per_channel, exclude, seed)
    earlier = cache.variants(handle.name).get(variant)
    if not force and earlier and earlier.get("request") == request and earlier.get("onnx_key") == src.parent.name:
        with contextlib.suppress(ZooError):
            path = cache.variant_path(handle.name, variant)
            cache.verify_files(path.parent, [path.name])  # a damaged one is made again, not kept
            say(f"{handle.name}: {variant} is already in the cache, made from this model with the same settings "
                "(--force makes it again)")  # fmt: skip
            return {"name": handle.name, "variant": variant, "path": str(path), "key": path.parent.name,
                    "seconds": round(time.perf_counter() - start, 3), "cached": True,
                    "provenance": cache.read_manifest(path.parent)["provenance"]}  # fmt: skip
    say(f"making the {variant} variant of {handle.name} ...")
    calibration: Iterable[np.ndarray] | Path | None = None
    if precision == "int8":
        calibration = Path(calib_dir) if calib_dir is not None else progress.steps(
            calibration_mod.synthetic_tensors(calib_synthetic, size, spec, seed), calib_synthetic, "calibrating",
            "images")  # fmt: skip
    cache.onnx_dir().mkdir(parents=True, exist_ok=True)
    # about 3x the float32 model for int8 (plain, prepared and quantized files), 2x for fp16
    need = (3 if precision == "int8" else 2) * src.stat().st_size
    with space.reserved(cache.onnx_dir(), need, f"the {variant_name(precision)} variant of '{handle.name}'"), \
            tempfile.TemporaryDirectory(dir=cache.onnx_dir(), prefix=cache.TEMP_PREFIX) as tmp:
        out = Path(tmp) / "model.onnx"
        provenance = quantize_onnx(src, out, precision=precision, calibration=calibration, method=method,
                                   per_channel=per_channel, exclude=exclude, input_spec=spec)  # fmt: skip
        if precision == "int8":
            provenance["calibration"]["source"] = (str(Path(calib_dir).resolve()) if calib_dir is not None
                                                   else f"synthetic {calib_synthetic} x {size}")  # fmt: skip
        settings = _settings(precision, calib_dir, calib_synthetic, size, method, per_channel, exclude, seed)
        provenance = {"source": "derived", "onnx_key": src.parent.name, "settings": settings, "request": request,
                      "made_by": artifacts.kind_for("onnx", precision).make_command(handle.name, settings), **provenance}
        path = cache.store_variant(handle, provenance["variant"], out, provenance)
    return {"name": handle.name, "variant": provenance["variant"], "path": str(path), "key": path.parent.name,
            "seconds": round(time.perf_counter() - start, 3), "cached": False,
            "provenance": cache.read_manifest(path.parent)["provenance"]}  # fmt: skip


def _settings(precision: str, calib_dir: Path | None, calib_synthetic: int, size: tuple[int, int], method: str,
              per_channel: bool, exclude: Iterable[str], seed: int) -> dict[str, Any]:  # fmt: skip
    """The ``zoo quantize`` options that make this variant again (those that differ from the command's defaults)."""
    chosen: dict[str, Any] = {"--exclude": ",".join(sorted(set(exclude))) or None}
    if precision == "int8":
        synthetic = calib_dir is None
        chosen.update({"--calib": None if synthetic else str(Path(calib_dir).resolve()),
                       "--calib-synthetic": calib_synthetic if synthetic else None,
                       "--size": f"{size[0]}x{size[1]}" if synthetic and tuple(size) != (512, 1024) else None,
                       "--seed": seed if synthetic and seed else None, "--method": method if method != "minmax" else None,
                       "--per-channel": per_channel or None})  # fmt: skip
    return {option: value for option, value in chosen.items() if value is not None}
