"""zoo eval: accuracy on labelled data (PaddleSeg's mIoU, accuracy, Kappa, Dice), one column per backend.

The work is zoo/measure/evaluation.py's, with its per-image step here (--engine local) or on Ray actors
(zoo/engines/ray_eval.py); either way this parses, prints one table (or JSON) and writes the --report folder.
Ctrl-C prints the partial result and exits 130.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Optional

import typer

from zoo.cli._app import app, info, parse_size, print_json, stdout_to_stderr
from zoo.cli.engine_options import (AddressFlag, BatchSizeFlag, EngineFlag, ThreadsPerWorkerFlag, WorkersFlag,
                                   ray_options, start_ray)
from zoo.store import artifacts


def parse_hw(text: str | None, option: str) -> tuple[int, int] | None:
    """``--crop``/``--stride`` HxW through the CLI's one size parser, with the option's own name in its message."""
    if text is None:
        return None
    try:
        return parse_size(text)
    except typer.BadParameter as exc:
        raise typer.BadParameter(str(exc.message), param_hint=option) from None


def _scales(text: str) -> tuple[float, ...]:
    from zoo.measure import inference

    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not 0 < v <= inference.MAX_SCALE for v in values):  # also refuses nan and inf
        raise typer.BadParameter(f"--scales takes numbers above 0 and up to {inference.MAX_SCALE}, separated by "
                                 f"commas, e.g. 0.75,1.0,1.25; got {text!r}")  # fmt: skip
    return values


@app.command("eval")
def eval_(
    model: str = typer.Argument(..., metavar="NAME|MODEL.onnx", help="Registry name, .onnx file or Paddle model folder."),
    data: Path = typer.Option(..., "--data", metavar="PATH",
                              help="Cityscapes root, PaddleSeg list file ('image label' lines) or a folder with "
                                   "images/ + labels/ (train ids; 255 ignored)."),  # fmt: skip
    split: str = typer.Option("val", "--split", help="Cityscapes split to read."),
    backend: Optional[str] = typer.Option(None, "--backend", metavar="NAME[,NAME...]",  # noqa: UP007
                                          help="Backends to evaluate side by side, e.g. onnx,paddle (default: the "
                                               "tuned choice, 'zoo tune', else onnx)."),  # fmt: skip
    precision: Optional[str] = typer.Option(None, "--precision", metavar="P[,P...]",  # noqa: UP007
                                            help="Precisions to evaluate on each backend, e.g. fp32,int8 (default: "
                                                 "the tuned choice, else fp32)."),  # fmt: skip
    device: str = typer.Option("cpu", "--device", help="cpu or gpu."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads per backend."),  # noqa: UP007
    mode: str = typer.Option("whole", "--mode", help="whole, or slide (sliding window, PaddleSeg's slide_inference)."),
    crop: Optional[str] = typer.Option(None, "--crop", metavar="HxW",  # noqa: UP007
                                       help="Slide window, height x width (PaddleSeg's crop_size [1024, 512] is 512x1024)."),  # fmt: skip
    stride: Optional[str] = typer.Option(None, "--stride", metavar="HxW", help="Slide step, height x width."),  # noqa: UP007
    scales: str = typer.Option("1.0", "--scales", help="Input scales to average, e.g. 0.75,1.0,1.25 (needs logits)."),
    flip: bool = typer.Option(False, "--flip", help="Also average the mirrored image (needs logits)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate the first N images only."),  # noqa: UP007
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip (and count) images whose label is missing or bad."),
    ignore_unknown_ids: bool = typer.Option(False, "--ignore-unknown-ids",
                                            help="Count label ids outside the model's classes as ignored, with a "
                                                 "warning giving their pixel counts (default: an error)."),  # fmt: skip
    absent_one: bool = typer.Option(False, "--absent-one",
                                    help="A class absent from prediction and labels scores IoU 1 (PaddleSeg >= 2.9) "
                                         "instead of 0 (<= 2.8, the registry's published numbers)."),  # fmt: skip
    engine: EngineFlag = "local",
    address: AddressFlag = None,
    workers: WorkersFlag = None,
    batch_size: BatchSizeFlag = None,
    threads_per_worker: ThreadsPerWorkerFlag = None,
    json_: bool = typer.Option(False, "--json", help="Print everything as one JSON object."),
    report: Optional[Path] = typer.Option(None, "--report", metavar="DIR",  # noqa: UP007
                                          help="Write eval.json, a per-class IoU chart, confusion matrices and the worst "
                                               "images here."),  # fmt: skip
) -> None:
    """Measure segmentation accuracy on labelled data, as PaddleSeg's val.py does, on one or more backends."""
    from zoo.measure import datasets, evaluation
    from zoo.runners import runtime

    options = evaluation.Options(mode, parse_hw(crop, "--crop"), parse_hw(stride, "--stride"), _scales(scales), flip,
                                 ignore_unknown_ids=ignore_unknown_ids)  # fmt: skip
    options.check()  # before any model loads
    ray = ray_options(engine, address=address, workers=workers, batch_size=batch_size,
                      threads_per_worker=threads_per_worker, threads=threads)  # before the model is looked up
    chosen = runtime.choose(model, backend, precision)  # no flags: the tuned choice ('zoo tune'), else the default
    if chosen.note:
        info(f"zoo: warning: {chosen.note}")
    elif chosen.tuned:
        info(f"zoo: using the tuned choice {chosen.describe()}")
    backend, precision = backend or chosen.backend, precision or chosen.precision
    names = [b.strip() for b in backend.split(",") if b.strip()]
    if not names:
        raise typer.BadParameter("--backend needs at least one name, e.g. onnx or onnx,paddle")
    precisions = [p.strip() for p in precision.split(",") if p.strip()]
    if not precisions:
        raise typer.BadParameter(f"--precision needs at least one of {', '.join(artifacts.PRECISIONS)}",
                                 param_hint="--precision")
    if report is not None:  # an unusable folder is refused now, not after the whole evaluation
        from zoo.measure import eval_report

        eval_report.check_out(report)
    from zoo.make import ensure
    from zoo.registry import catalog

    target = catalog.resolve_target(model)  # a name is looked up once
    options = evaluation.label_conventions(options, target)  # the entry's ignore_index, reduce_zero_label
    for name in names:  # what each backend runs at each precision is brought into the cache first
        for p in precisions:
            ensure.prepare(target, name, p, progress=info)
    dataset = datasets.open_dataset(data, split=split)
    shared: dict[str, Any] = {
        "options": options, "limit": limit, "skip_bad": skip_bad, "absent": "one" if absent_one else "zero",
        "progress": True, "keep_worst": evaluation.WORST if report else 0,
        "reference_miou": evaluation.reference_miou(model, dataset),
    }  # fmt: skip
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", runtime.MetadataWarning)
            if ray is not None:  # the same evaluation, its per-image step on Ray actors
                from zoo.engines import ray_cluster, ray_eval

                try:
                    start_ray(ray)
                    result = ray_eval.evaluate(target, dataset, backends=names, precisions=precisions,
                                               device=device, ray=ray, announce=info, chosen=chosen,
                                               **shared)  # fmt: skip
                finally:
                    ray_cluster.disconnect()
            else:
                # a tuned choice's thread count (an explicit --threads wins) and runner options too
                loaded = [runtime.load(target, backend=name, device=device, threads=threads or chosen.threads,
                                       precision=p, options=chosen.options or None)
                          for name in names for p in precisions]  # fmt: skip
                count = min(limit or len(dataset.samples), len(dataset.samples))
                of = f"{count} of {len(dataset.samples)}" if count < len(dataset.samples) else f"all {count}"
                info(f"evaluating {loaded[0].name} on {dataset.path} ({dataset.layout}): {of} images, "
                     f"{', '.join(f'{m.backend}/{m.precision}' for m in loaded)}")  # fmt: skip
                result = evaluation.run(loaded, dataset, **shared)
        for w in caught:
            if issubclass(w.category, (runtime.MetadataWarning, runtime.TunedWarning)):
                info(f"zoo: warning: {w.message}")
        for message in result.skipped:
            info(f"zoo: skipped: {message}")
        if (unknown := datasets.unknown_warning(result.unknown_ids, result.unknown_images, len(result.labels))):
            info(f"zoo: warning: {unknown}")
    if json_:  # the results first: a report that fails to write must not lose them
        print_json({**result.as_dict(), "config": chosen.as_dict()})
    else:
        typer.echo(format_table(result))
    if report is not None:
        from zoo.measure import eval_report

        written = eval_report.write_report(result, report)
        info(f"report: {', '.join(str(p) for p in written[:3])}{' ...' if len(written) > 3 else ''}")
    if result.interrupted:
        info(f"zoo: interrupted after {result.images} image(s): the numbers above cover those only")
        stop = typer.Exit(130)
        stop.said = True  # type: ignore[attr-defined]  # zoo's main says "interrupted" only when nothing else did
        raise stop


def format_table(result: Any) -> str:
    """One side-by-side table: summary rows, then IoU per class; percentages."""
    from zoo.cli._app import table

    d = result.as_dict()
    keys = list(d["backends"])
    cols = [d["backends"][k] for k in keys]
    rows = [["mIoU"] + [f"{c['miou'] * 100:.2f}" for c in cols],
            ["acc"] + [f"{c['acc'] * 100:.2f}" for c in cols],
            ["kappa (not %)"] + [f"{c['kappa']:.4f}" for c in cols],
            ["dice"] + [f"{c['dice'] * 100:.2f}" for c in cols]]  # fmt: skip
    if d["reference_miou"] is not None:
        rows.append([f"mIoU - registry ({d['reference_miou']:.2f})"] + [f"{c['miou_minus_reference']:+.2f}" for c in cols])
    rows.append(["images/s"] + [f"{c['images_per_second'] or 0:.2f}" for c in cols])
    for i, name in enumerate(d["labels"]):
        rows.append([f"IoU {name}"] + [f"{c['class_iou'][i] * 100:.2f}" if i < len(c["class_iou"]) else "-" for c in cols])
    split = f" {d['split']}" if d["split"] else ""
    head = (f"{d['model']} on {d['data']} ({d['layout']}{split}): {d['images']} images, {d['mode']}"
            f"{' +flip' if d['flip'] else ''}{' scales ' + ','.join(map(str, d['scales'])) if d['scales'] != [1.0] else ''}"
            f"; {d['convention']}{'; skipped ' + str(d['skipped']) if d['skipped'] else ''}"
            f"{'; INTERRUPTED (partial)' if d['interrupted'] else ''}")  # fmt: skip
    return head + "\n" + table(rows, ["metric (% but kappa)"] + keys)
