"""Does one backend agree with another (by default: the default backend with the reference one, as their specs say —
ONNX Runtime with Paddle Inference as zoo ships)? How much, and where not.

:func:`verify_model` runs both backends of the pair on the same preprocessed tensors and compares their outputs per
image and overall with :mod:`zoo.measure.compare` (the first backend is the reference). Each side is named for what
ran, ``backend/precision`` (``paddle/fp32``, ``onnx/int8``), in the result and its JSON. With a ``report_dir`` it writes
``verify.json`` and, per image, a PNG with the disagreeing pixels in magenta on the dimmed image and their bounding box
in yellow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.measure.compare import (  # noqa: F401 (the comparison API, re-exported where it used to live)
    Comparison, Tolerance, Where, combine, compare, compare_labels, compare_logits, locate,
)  # fmt: skip
from zoo.errors import BackendError, NotCachedError
from zoo.measure.inputs import inputs
from zoo.store import userfiles

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

MARK = (255, 0, 255)  # disagreeing pixels in the report PNG
BOX = (255, 255, 0)  # their bounding box


@dataclass(frozen=True)
class ImageCheck:
    """One input and how the two backends compared on it."""

    image: str  # the file, or "synthetic:<seed>:<index>"
    size: tuple[int, int]  # (H, W) of the network input
    comparison: Comparison
    png: str | None = None  # report picture, when a report was written

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.image, "size": list(self.size), "png": self.png, **self.comparison.as_dict()}


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a model: per image and overall."""

    name: str  # registry name
    passed: bool  # every image within tolerance
    tolerance: Tolerance
    overall: Comparison  # totals over every image
    images: tuple[ImageCheck, ...]
    models: dict[str, dict[str, Any]]  # per side: backend, precision, device, the cached file or folder that ran, sha256
    backends: dict[str, Any]  # how each side ran: its runner's describe()
    pair: tuple[str, str]  # (reference, candidate), each "backend/precision": the keys of models and backends
    output_op: str | None = None  # what the export put at the end of the graph, when recorded
    weights: str | None = None  # "random" for an untrained export
    seconds: float = 0.0  # wall time, both backends included
    report: str | None = None  # verify.json, when a report was written

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "passed": self.passed, "kind": self.overall.kind, "tolerance": self.tolerance.as_dict(),
            "summary": self.summary(), "overall": self.overall.as_dict(), "images": [i.as_dict() for i in self.images],
            "models": self.models, "backends": self.backends, "output_op": self.output_op, "weights": self.weights,
            "seconds": round(self.seconds, 3), "report": self.report,
            "reference": self.pair[0], "candidate": self.pair[1],
        }  # fmt: skip

    def summary(self) -> str:
        """The overall verdict in one line; for one image, that image's line (which says where)."""
        if len(self.images) == 1:
            return self.images[0].comparison.summary(self.tolerance)
        failed = [i for i in self.images if not i.comparison.passed]
        head = self.overall.summary(self.tolerance)
        if failed:
            head += f" [{len(failed)} of {len(self.images)} images fail]"
        return head


REDUCED_MIN_AGREEMENT = 0.98  # default for a reduced-precision candidate: 98% of pixels must keep their class


def tolerance_for(precision: str, min_agreement: float | None = None, rtol: float = 1e-3,
                  atol_rel: float = 1e-4) -> Tolerance:  # fmt: skip
    """The default tolerance for a candidate running at ``precision``: float32 must match (logits allclose, 99.99%
    of labels); a reduced-precision variant is judged on label agreement (98% unless given) and its logit error is
    reported, not judged."""
    if precision == "fp32":
        return Tolerance(min_agreement=Tolerance.min_agreement if min_agreement is None else min_agreement,
                         rtol=rtol, atol_rel=atol_rel)  # fmt: skip
    agreement = REDUCED_MIN_AGREEMENT if min_agreement is None else min_agreement
    return Tolerance(min_agreement=agreement, rtol=rtol, atol_rel=atol_rel, labels_only=True)


def verify_model(
    model: ModelHandle | str,
    *,
    images: Sequence[str | Path] | None = None,
    size: tuple[int, int] = (512, 1024),
    count: int = 2,
    seed: int = 0,
    threads: int | None = None,
    tolerance: Tolerance | None = None,
    report_dir: str | Path | None = None,
    convert: bool = True,
    backends: tuple[str, str] | None = None,
    precision: str = "fp32",
    device: str | None = None,
    runner_options: dict[str, Any] | None = None,
) -> VerifyResult:
    """Run two backends on the same preprocessed inputs and compare their outputs; the first is the reference.

    ``backends``: (reference, candidate) names; None: the reference and default backends the specs name.
    ``device``: where both run; None: each backend's first declared device (a GPU-only plugin runs on its GPU).

    ``images``: files to use; without them, ``count`` seeded synthetic images of ``size`` (H, W). A backend that runs
    ONNX uses the cached conversion (``zoo.verify_model`` and ``zoo verify`` pull and convert what is missing first);
    one converted from an older Paddle model is converted again (``convert=False``: NotCachedError).
    ``precision``: what the second backend (the candidate) runs, e.g. the int8 variant; the reference stays float32.
    ``runner_options``: the candidate's runner options (a tuned choice's, e.g. OpenVINO's ``f32_layers``).
    """
    from zoo.registry import backends as registered, catalog
    from zoo.runners import runtime
    from zoo.store import artifacts, cache, repair

    handle = catalog.handle(model)
    name, arch = handle.name, handle.architecture
    tol = tolerance or tolerance_for(precision)
    backends = tuple(backends) if backends is not None else registered.default_pair()  # type: ignore[assignment]
    # one backend against itself is a pair too when the sides differ: paddle/fp32 vs paddle/bf16
    if len(backends) != 2 or (backends[0] == backends[1] and precision == "fp32"):
        raise BackendError(f"verify compares two different backends or precisions, got {', '.join(backends) or 'none'} "
                           f"at {precision}; e.g. --backend {','.join(registered.default_pair())}")  # fmt: skip
    specs = [registered.get(b) for b in backends]
    devices = [device or s.devices[0] for s in specs]
    ref = cache.get_ref(name).get("paddle", {})
    paths: list[Path] = []
    precisions = ("fp32", precision)
    for spec, p in zip(specs, precisions):  # every file is re-hashed: a file changed on disk is not a disagreement
        paths.append(runtime.model_file(handle, spec, p))

    started = time.perf_counter()
    options = (None, runner_options)
    runners = [registered.open_runner(s, path, device=d, threads=threads, precision=p, options=o)
               for s, path, d, p, o in zip(specs, paths, devices, precisions, options)]  # fmt: skip
    paddle_dir = next((p for s, p in zip(specs, paths) if "paddle" in s.formats), None)
    for i, (spec, runner) in enumerate(zip(specs, runners)):
        source_key = (getattr(runner, "metadata", None) or {}).get("zoo.paddle_key")
        if paddle_dir is not None and source_key and source_key != paddle_dir.name:
            # converted from an earlier Paddle model of this name (re-exported or re-pulled since): comparing them
            # would blame ONNX for a change of weights
            kind = artifacts.kind_for_backend(spec, precisions[i])
            if not convert or not kind.automatic:  # advice: the command remaking that very artifact (an int8 too)
                raise NotCachedError(
                    f"the cached {kind.name} model of '{name}' was converted from another Paddle model "
                    f"({source_key[:12]}) than the cached one ({paddle_dir.name[:12]}); "
                    f"run '{repair.command(name, kind.name)}', then 'zoo verify {name}'"
                )
            from zoo.make.convert import convert as convert_model

            paths[i] = Path(convert_model(handle).path)
            runners[i] = registered.open_runner(spec, paths[i], device=devices[i], threads=threads,
                                                precision=precisions[i], options=options[i])  # fmt: skip
    report = Path(report_dir) if report_dir is not None else None
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
    sides = (f"{specs[0].name}/{precisions[0]}", f"{specs[1].name}/{precisions[1]}")
    checks = []
    for index, (label, rgb) in enumerate(inputs(images, size, count, seed)):
        x = runtime.preprocess(rgb, arch.input)
        outputs = runners[0].run(x), runners[1].run(x)
        comparison = compare(outputs[0], outputs[1], tol, arch.labels, sides)
        png = None
        if report is not None:
            png = str(report / f"{index:02d}-{_stem(label)}.png")
            view = _network_view(x, arch.input)
            write_marked_png(Path(png), view, comparison)
            from zoo.measure import verify_pictures

            verify_pictures.write_side_by_side(Path(png).with_suffix(".sides.png"), view, outputs, arch,
                                               mark_disagreement(view, comparison),
                                               (f"{sides[0]} (reference)", sides[1]))  # fmt: skip
        checks.append(ImageCheck(label, (int(x.shape[2]), int(x.shape[3])), comparison, png))
    overall = combine([c.comparison for c in checks], tol)
    models = {
        side: {"backend": s.name, "precision": p, "device": d, "path": str(path),
               "sha256": cache.sha256_file(path) if path.is_file() else None}
        for side, s, p, d, path in zip(sides, specs, precisions, devices, paths)
    }  # fmt: skip
    result = VerifyResult(
        name=name, passed=all(c.comparison.passed for c in checks), tolerance=tol, overall=overall,
        images=tuple(checks), models=models, backends={side: r.describe() for side, r in zip(sides, runners)},
        output_op=ref.get("output_op"), weights=ref.get("weights"), seconds=time.perf_counter() - started,
        report=str(report / "verify.json") if report is not None else None, pair=sides,
    )  # fmt: skip
    if report is not None:
        userfiles.write_user_json(report / "verify.json", result.as_dict())
        from zoo.measure import verify_pictures

        verify_pictures.write_index(report, result, arch)
    return result


def _network_view(x: np.ndarray, spec: Any) -> np.ndarray:
    """The RGB picture the network saw, recovered from its input tensor (already resized, if the spec resizes)."""
    chw = x[0].astype(np.float32)
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    pixels = (chw * std + mean) / (spec.scale or 1.0)
    rgb = np.clip(pixels.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)
    return rgb[:, :, ::-1] if str(spec.color).upper() == "BGR" else rgb


def mark_disagreement(rgb: np.ndarray, comparison: Comparison) -> np.ndarray:
    """The image dimmed to gray, disagreeing pixels in magenta, their bounding box in yellow."""
    gray = rgb.astype(np.float32).mean(axis=2, keepdims=True)
    out = np.repeat(gray * 0.35 + 20, 3, axis=2).astype(np.uint8)
    mask = comparison.mask
    if mask is None or mask.shape != rgb.shape[:2]:
        return out
    out[mask] = MARK
    if comparison.where is not None and comparison.where.bbox is not None:
        x0, x1, y0, y1 = comparison.where.bbox
        x0, y0 = max(x0 - 1, 0), max(y0 - 1, 0)
        x1, y1 = min(x1 + 1, out.shape[1] - 1), min(y1 + 1, out.shape[0] - 1)
        out[y0, x0 : x1 + 1] = out[y1, x0 : x1 + 1] = BOX
        out[y0 : y1 + 1, x0] = out[y0 : y1 + 1, x1] = BOX
    return out


def write_marked_png(path: Path, rgb: np.ndarray, comparison: Comparison) -> None:
    """Write :func:`mark_disagreement` as a PNG."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(mark_disagreement(rgb, comparison)[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode the report picture {path}")
    userfiles.write_user_file(path, data.tobytes())


def _stem(label: str) -> str:
    stem = Path(label).stem if not label.startswith("synthetic:") else label.replace(":", "-")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "image"


DEFAULT_MIN_AGREEMENT = 0.995  # what a tuned choice must agree with the reference by unless zoo tune is told otherwise


def reference_pair() -> tuple[str, str]:
    """(backend, precision) a tuned candidate is judged against: the reference backend (its spec says so) in fp32."""
    from zoo.registry import backends as registered

    return registered.reference_backend().name, "fp32"


def verify_tuned(model: ModelHandle | str, **kwargs: Any) -> Any:
    """``zoo verify NAME --tuned``: the recorded choice against float32 Paddle again, on the images and with the
    threshold it was chosen by; a VerifyResult."""
    from zoo.registry import catalog
    from zoo.registry import tuning

    handle = catalog.handle(model)
    record, note = tuning.status(handle)
    if record is None:
        raise NotCachedError(note or f"model '{handle.name}' has no tuned choice; run 'zoo tune {handle.name}'")
    crit = record.doc.get("criteria", {})
    c = record.choice
    if (c.backend, c.precision) == reference_pair():
        raise BackendError(f"the tuned choice of '{handle.name}' is {c.key}, the reference itself: there is nothing "
                           f"to re-check; 'zoo verify {handle.name}' compares it with the default backend")  # fmt: skip
    options = dict(size=tuple(crit.get("size") or (512, 1024)), count=int(crit.get("count", 2)),
                   seed=int(crit.get("seed", 0)), images=crit.get("images") or None, threads=c.threads)  # fmt: skip
    options.update(kwargs)
    tol = tolerance_for(c.precision, float(crit.get("min_agreement", DEFAULT_MIN_AGREEMENT)))
    return verify_model(handle, backends=(reference_pair()[0], c.backend), precision=c.precision, tolerance=tol,
                        runner_options=dict(c.options) or None, **options)  # fmt: skip
