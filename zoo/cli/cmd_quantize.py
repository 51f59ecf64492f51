"""zoo quantize: a registry model's int8 (static QDQ) or fp16 ONNX variant, stored in the cache with its provenance."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import app, info, parse_size, print_json, stdout_to_stderr
from zoo.store import artifacts
from zoo.util import peak_rss_mb

PRECISIONS = tuple(p for kind in artifacts.made_by("quantize") for p in kind.precisions)


@app.command()
def quantize(
    name: str = typer.Argument(..., help="Model name (see 'zoo list')."),
    precision: str = typer.Option(..., "--precision", metavar="|".join(PRECISIONS), help="Variant to make."),
    calib: Optional[Path] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--calib", metavar="DIR", help="int8: folder of calibration images (preprocessed like zoo run)."
    ),
    calib_synthetic: int = typer.Option(
        0, "--calib-synthetic", metavar="N", min=0, help="int8: calibrate on N synthetic street scenes instead."
    ),
    size: str = typer.Option("512x1024", "--size", metavar="HxW", help="Size of the synthetic calibration scenes."),
    method: str = typer.Option("minmax", "--method", metavar="minmax|entropy|percentile", help="Calibration method."),
    per_channel: bool = typer.Option(False, "--per-channel", help="int8: one weight scale per output channel."),
    exclude: str = typer.Option("", "--exclude", metavar="OPS", help="Op types to keep in float, comma-separated."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first synthetic calibration scene."),
    force: bool = typer.Option(False, "--force", help="Make the variant again even if the same one is cached."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Make a reduced-precision ONNX variant of a model, deterministic for the same inputs; a model not cached yet is
    pulled and converted first."""
    from zoo.make import ensure, quantize as quantize_mod
    from zoo.registry import catalog

    quantize_mod.check_calibration(precision, calib, calib_synthetic)  # before anything is pulled for it
    hw = parse_size(size)
    ops = tuple(op.strip() for op in exclude.split(",") if op.strip())
    handle = catalog.resolve(name)
    kind = artifacts.kind_for("onnx", precision)
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        from zoo import progress

        with progress.spinner(f"getting the {kind.derives_from or artifacts.ROOT} model of {name}"):
            source = ensure.ensure(handle, kind.derives_from or artifacts.ROOT, progress=info)  # pulled, converted
        result = quantize_mod.quantize_model(
            handle, source, precision=precision, calib_dir=calib, calib_synthetic=calib_synthetic, size=hw,
            method=method, per_channel=per_channel, exclude=ops, seed=seed, force=force, say=info,
        )  # fmt: skip
    if json_:
        print_json({**result, "peak_rss_mb": round(peak_rss_mb())})
        return
    if result["cached"]:
        typer.echo(result["path"])
        return
    prov = result["provenance"]
    calibrated = ""
    if "calibration" in prov:
        calibrated = f", calibrated on {prov['calibration']['count']} input(s) ({prov['method']})"
    info(f"{name}: {result['variant']} in {result['seconds']:.1f} s{calibrated}, peak RSS {peak_rss_mb():.0f} MB, "
         f"{prov['sha256']}")
    typer.echo(result["path"])
