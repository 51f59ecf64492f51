"""Something trained, so zoo eval's numbers mean something: fine-tune BiSeNetV2 on synthetic street scenes, export it,
convert it, and evaluate it with ``zoo eval`` on held-out scenes on both backends.

    python benchmarks/eval_train.py [--minutes 4] [--weights FILE] [--home DIR] [--out result.json]

Training is Paddle dygraph with a loop written here (zoo has no trainer): random scenes (seeds 10_000+) at 256x512,
batch 2, cross-entropy (ignore 255) on the main head plus the auxiliary heads BiSeNetV2 returns in train mode,
Adam (1e-3, poly decay), for ``--minutes`` of wall time. The weights go through
``paddle.save(state_dict)`` → ``zoo export --weights`` (zoo's safe .pdparams reader) → ``zoo convert`` → ``zoo eval``
on 50 other scenes (seeds 0-49) in the Cityscapes layout — float32 on ONNX Runtime and Paddle Inference, bf16 on
Paddle (oneDNN) and OpenVINO, and the int8 variant ``zoo quantize`` makes (calibrated on 32 other scenes, seeds
20000+) on ONNX Runtime and OpenVINO — with each one's mIoU drop against float32 ONNX. ``--weights FILE`` keeps the
trained weights there (for benchmarks/precision.py ``--trained bisenet=FILE``); if FILE exists, training is skipped.
Not part of CI; run once by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import log, run  # noqa: E402

H, W, BATCH, EVAL_IMAGES = 256, 512, 2, 50


def _batch(step: int):
    import numpy as np

    from zoo.synthetic import labelled_street_scene

    xs, ys = [], []
    for i in range(BATCH):
        rgb, lab = labelled_street_scene(H, W, seed=10_000 + step * BATCH + i)
        if (step + i) % 2:  # mirrored scenes too: the generator always puts the lane in the middle, the car left
            rgb, lab = rgb[:, ::-1], lab[:, ::-1]
        xs.append(((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
        ys.append(lab.astype(np.int64))
    return np.stack(xs), np.stack(ys)


def train(minutes: float, out: Path) -> dict:
    import paddle
    import paddle.nn.functional as F

    from zoo.make.export import build_network

    paddle.seed(0)
    net = build_network("bisenet", 19, None, seed=0)
    net.train()
    total_steps = 10_000  # the poly schedule's horizon; the wall-time budget ends training first
    schedule = paddle.optimizer.lr.PolynomialDecay(1e-3, total_steps, end_lr=0.0, power=0.9)
    opt = paddle.optimizer.Adam(schedule, parameters=net.parameters())  # few steps on a shared machine: Adam
    started, step, losses = time.monotonic(), 0, []
    while time.monotonic() - started < minutes * 60:
        x, y = _batch(step)
        outs = net(paddle.to_tensor(x))
        label = paddle.to_tensor(y)
        loss = sum(F.cross_entropy(o, label, axis=1, ignore_index=255) for o in outs)
        loss.backward()
        opt.step()
        opt.clear_grad()
        schedule.step()
        losses.append(float(loss))
        if step % 5 == 0:
            log(f"step {step}: loss {losses[-1]:.3f} ({time.monotonic() - started:.0f} s)")
        step += 1
    net.eval()
    paddle.save(net.state_dict(), str(out))
    return {"steps": step, "seconds": round(time.monotonic() - started, 1), "batch": BATCH, "size": [H, W],
            "first_loss": round(losses[0], 4), "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--home", type=Path, default=None, help="ZOO_HOME to use (default: a temporary one)")
    parser.add_argument("--weights", type=Path, help="keep the trained .pdparams here; reuse them if the file exists")
    parser.add_argument("--out", type=Path, default=Path("eval_train.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-eval-train-") as tmp:
        home = args.home or Path(tmp) / "home"
        os.environ["ZOO_HOME"] = str(home)
        weights = args.weights or Path(tmp) / "bisenet_synthetic.pdparams"
        if weights.is_file():
            log(f"reusing the trained weights in {weights}")
            training = json.loads(args.out.read_text())["training"] if args.out.is_file() else {"reused": str(weights)}
        else:
            log(f"training BiSeNetV2 for {args.minutes} min at {H}x{W}")
            weights.parent.mkdir(parents=True, exist_ok=True)
            training = train(args.minutes, weights)
            log(f"trained: {training}")
        run(["zoo", "export", "bisenet", "--weights", str(weights), "--output-op", "argmax"])  # PIR: Paddle bf16 runs it
        run(["zoo", "convert", "bisenet", "--force"])
        run(["zoo", "quantize", "bisenet", "--precision", "int8", "--calib-synthetic", "32", "--size", f"{H}x{W}",
             "--seed", "20000"])  # fmt: skip
        from zoo.synthetic import write_labelled_dataset

        data = write_labelled_dataset(Path(tmp) / "cityscapes", EVAL_IMAGES, H, W, layout="cityscapes")
        result: dict = {}
        tables = []
        for backends, precision in (("onnx,paddle", "fp32"), ("paddle,openvino", "bf16"), ("onnx,openvino", "int8")):
            cmd = ["zoo", "eval", "bisenet", "--data", str(data), "--backend", backends, "--precision", precision]
            done = json.loads(run([*cmd, "--json"]).stdout)
            result.setdefault("images", done["images"])
            result.setdefault("backends", {}).update(done["backends"])
            tables.append(run(cmd).stdout)
    doc = {"training": training, "eval": result, "tables": tables, "summary": summary(result["backends"])}
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print("\n".join(tables))
    print(doc["summary"])
    log(f"saved {args.out}")


def summary(backends: dict) -> str:
    """One markdown table: mIoU, accuracy and the drop against float32 ONNX, per backend and precision."""
    base = backends["onnx"]["miou"]
    lines = ["| backend/precision | mIoU % | mIoU − onnx fp32 (points) | acc % | kappa | images/s |", "|---|---|---|---|---|---|"]
    for key, b in backends.items():
        lines.append(f"| {key} | {100 * b['miou']:.2f} | {100 * (b['miou'] - base):+.2f} | {100 * b['acc']:.2f} | "
                     f"{b['kappa']:.4f} | {b['images_per_second']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
