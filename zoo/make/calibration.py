"""Calibration for static int8: the tensors (a folder's images or synthetic street scenes, preprocessed as zoo run
does), the reader that hashes them on their way to onnxruntime, activation ranges computed in batches at low memory,
and the request a variant was made from (so an identical request is answered from the cache).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import QuantizationError

if TYPE_CHECKING:
    import numpy as np

    from zoo.registry.spec import InputSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class CalibrationReader:
    """ORT's CalibrationDataReader protocol over a stream of NCHW float32 tensors, hashing them as they pass."""

    def __init__(self, input_name: str, tensors: Iterable[np.ndarray]):
        self.input_name = input_name
        self._it: Iterator[np.ndarray] = iter(tensors)
        self._hash = hashlib.sha256()
        self.count = 0
        self.shapes: set[tuple[int, ...]] = set()

    def get_next(self) -> dict[str, np.ndarray] | None:
        import numpy as np

        x = next(self._it, None)
        if x is None:
            return None
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise QuantizationError(f"calibration tensors must be float32 [N, 3, H, W], got shape {list(x.shape)}")
        self._hash.update(f"{x.shape}".encode())
        self._hash.update(x.tobytes())
        self.count += 1
        self.shapes.add(tuple(x.shape))
        return {self.input_name: x}

    def sha256(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def calibration_files(folder: Path) -> list[Path]:
    """The images of a calibration folder, sorted by name (QuantizationError if there are none)."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise QuantizationError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); give a folder of "
                                "calibration images, or use --calib-synthetic N")  # fmt: skip
    return files


def folder_tensors(folder: Path, spec: InputSpec) -> Iterator[np.ndarray]:
    """The preprocessed tensor of every image in ``folder`` (sorted by name), as zoo run would feed it."""
    from zoo.images import read_image
    from zoo.runners.tensors import preprocess

    for path in calibration_files(folder):
        yield preprocess(read_image(path), spec)


def synthetic_tensors(count: int, size: tuple[int, int], spec: InputSpec, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` preprocessed synthetic street scenes of ``size`` (H, W), seeds ``seed, seed+1, ...``."""
    from zoo.runners.tensors import preprocess
    from zoo.synthetic import street_scene

    for i in range(count):
        yield preprocess(street_scene(size[0], size[1], seed=seed + i), spec)

CALIBRATION_BATCH = 8  # images per collect_data call: what the calibrator holds before merging it into its ranges


def calibrate(prepared: Path, tmp: Path, reader: CalibrationReader, op_types: list[str], method: Any) -> Path:
    """Activation ranges of ``prepared`` over the reader's tensors, written to a calibration file quantize_static reads.

    Done here rather than inside quantize_static, for memory: ORT's calibration session runs the model with a
    ReduceMin/ReduceMax pair on every tensor, and its default execution order runs those reductions late, keeping most
    activations alive at once (3.9 GB peak RSS for fcn at 512x1024, whatever the number of images). Priority-based
    order runs each reduction as soon as its tensor exists, and without the memory arena the freed activations go back
    to the system: ~0.5 GB. Images go through in batches of CALIBRATION_BATCH; each ``collect_data`` call merges its
    batch into the ranges (not CalibMaxIntermediateOutputs: in ORT 1.32 it clears collected outputs unmerged).
    """
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    calibrator = create_calibrator(prepared, op_types, augmented_model_path=str(tmp / "augmented.onnx"),
                                   calibrate_method=method, extra_options={})  # fmt: skip
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as ORT's calibrator has it
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # ORT's warnings about initializers it drops are about the augmented copy only
    calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, sess_options=options,
                                                    providers=["CPUExecutionProvider"])  # fmt: skip
    while True:
        batch = _Batch(reader, CALIBRATION_BATCH)
        if batch.peek() is None:
            break
        calibrator.collect_data(batch)
    if reader.count == 0:
        raise QuantizationError("the calibration set is empty; give at least one image")
    ranges = tmp / "ranges.json"
    save_tensors_data(calibrator.compute_data(), ranges)
    del calibrator
    return ranges


class _Batch:
    """At most ``size`` inputs of a reader, as a reader of its own (look-ahead of one, so an empty batch is seen)."""

    def __init__(self, reader: CalibrationReader, size: int) -> None:
        self.reader, self.left = reader, size
        self._next = reader.get_next()

    def peek(self) -> dict[str, np.ndarray] | None:
        return self._next

    def get_next(self) -> dict[str, np.ndarray] | None:
        item, self._next = self._next, None
        self.left -= 1
        if item is not None and self.left > 0:
            self._next = self.reader.get_next()
        return item


def request(precision: str, calib_dir: Path | None, calib_synthetic: int, size: tuple[int, int], method: str,
             per_channel: bool, exclude: Iterable[str], seed: int) -> dict[str, Any]:  # fmt: skip
    """What a variant was asked to be, as JSON: equal requests from the same float32 model make the same file.

    A calibration folder counts by its images' names, sizes and modification times (hashing every image would cost
    as much as reading them for calibration)."""
    request: dict[str, Any] = {"precision": precision, "exclude": sorted(set(exclude))}
    if precision != "int8":
        return request
    if calib_dir is not None:
        digest = hashlib.sha256()
        for file in calibration_files(Path(calib_dir)):
            stat = file.stat()
            digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        calibration: dict[str, Any] = {"folder": str(Path(calib_dir).resolve()), "files": "sha256:" + digest.hexdigest()}
    else:
        calibration = {"synthetic": calib_synthetic, "size": list(size), "seed": seed}
    return {**request, "method": method, "per_channel": per_channel, "calibration": calibration}
