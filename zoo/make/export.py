"""Export a registry entry's network, with trained or seeded random weights, into a cached Paddle inference model.

The network comes from the architecture plugin's builder; weights are read with :mod:`zoo.formats.weights` (never
``paddle.load``). The saved graph ends like PaddleSeg's own exports: ``argmax`` → int32 ``[N, H, W]``, ``softmax`` →
float32 probabilities, ``none`` → float32 logits ``[N, C, H, W]``; input ``x`` is float32 ``[N, 3, H, W]`` with dynamic
N, H, W. Paddle 3 writes PIR ``model.json``; ``legacy=True`` writes the older ``model.pdmodel`` program that published
PaddleSeg models use (made in a subprocess with ``FLAGS_enable_pir_api=0``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.registry import catalog, plugins, entries as registry
from zoo.store import cache
from zoo.errors import WeightsError, ZooError
from zoo.registry.entries import Artifact
from zoo.util import OUTPUT_OPS

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

KEEP = ("model.json", "model.pdmodel", "model.pdiparams")


def _resolve_weights(entry: registry.ModelEntry, weights: str | Path | None) -> tuple[Path | None, dict[str, Any]]:
    """A local .pdparams path (or None for random) and what to record about it."""
    if weights == "random":
        return None, {"weights": "random"}
    from zoo.net import fetch
    from zoo.formats.weights import read_pdparams

    if weights is None:
        artifact = entry.artifacts.get("weights")
        if artifact is None:
            raise WeightsError(f"model '{entry.name}' has no [weights] artifact; pass --weights PATH|URL|random")
        got = fetch.fetch(artifact, pin_id=f"{entry.name}/weights", check=read_pdparams)  # refused: never kept
    elif str(weights).startswith(("http://", "https://", "file://")):
        got = fetch.fetch(Artifact("weights", (str(weights),)), pin_id=f"{entry.name}/weights@{weights}",
                          check=read_pdparams)  # fmt: skip
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; pass a .pdparams path, a URL, or 'random'")
        return path, {"weights": "trained", "weights_sha256": cache.sha256_file(path), "weights_url": str(path)}
    return got.path, {"weights": "trained", "weights_sha256": got.sha256, "weights_url": got.url}


def _deploy_yaml(arch, output_op: str, program: str) -> str:
    import yaml

    spec = arch.input
    doc = {
        "Deploy": {
            "model": program,
            "params": "model.pdiparams",
            "output_op": output_op,
            "input": spec.as_dict(),
            "transforms": [{"type": "Normalize", "mean": list(spec.mean), "std": list(spec.std)}],
        }
    }
    return yaml.safe_dump(doc, sort_keys=False)


def build_network(arch_name: str, num_classes: int, weights_path: str | None, seed: int):
    """The plugin's network in eval mode, with the file's weights or seeded random ones (imports paddle)."""
    import paddle

    from zoo.formats import weights as weights_mod

    paddle.seed(seed)
    build = plugins.load_builder(plugins.get_architecture(arch_name))
    model = build(num_classes=num_classes)
    if weights_path:
        state = weights_mod.read_pdparams(Path(weights_path))
        expected = {k: (tuple(v.shape), str(v.dtype).replace("paddle.", "")) for k, v in model.state_dict().items()}
        weights_mod.check_against(expected, state, weights_path)
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    return model


def _with_output_op(model, output_op: str):
    import paddle
    import paddle.nn.functional as F

    from zoo.nn import ops

    class Exported(paddle.nn.Layer):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            logits = self.net(x)
            if output_op == "argmax":
                return ops.argmax_int32(logits, axis=1)
            if output_op == "softmax":
                return F.softmax(logits, axis=1)
            return logits

    return Exported(model)


def save_inference(arch_name: str, num_classes: int, weights_path: str | None, output_op: str, seed: int,
                   out_dir: Path) -> None:  # fmt: skip
    """Build, load weights and save ``out_dir/model.*`` (PIR, or legacy when FLAGS_enable_pir_api=0 is set)."""
    import paddle
    from paddle.static import InputSpec

    spec = [InputSpec([None, 3, None, None], "float32", "x")]
    if paddle.framework.use_pir_api():
        model = _with_output_op(build_network(arch_name, num_classes, weights_path, seed), output_op)
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        paddle.jit.save(static, str(out_dir / "model"))
        return
    values = {k: v.numpy() for k, v in build_network(arch_name, num_classes, weights_path, seed).state_dict().items()}
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 3, None, None], "float32")
        net = build_network(arch_name, num_classes, None, seed)
        out = _with_output_op(net, output_op)(x)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    for key, var in net.state_dict().items():
        var.set_value(values[key])
    paddle.static.save_inference_model(str(out_dir / "model"), [x], [out], exe, program=main)


def export_model(model: ModelHandle | str, *, weights: str | Path | None = None, output_op: str = "argmax",
                 seed: int = 0, legacy: bool = False, origin: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Export ``model`` into the cache and point its Paddle ref at it; returns the model folder.

    ``origin``: the caller already fetched and verified ``weights`` (a path) — what to record about them and where
    they came from (``weights_sha256``, ``source``, ``url``, ...); they are not looked up or hashed again, and the
    ref is written once, with it.
    """
    from zoo.util import version

    if output_op not in OUTPUT_OPS:
        raise ZooError(f"unknown output op '{output_op}'; choose one of {', '.join(OUTPUT_OPS)}")
    handle = catalog.handle(model)
    name, arch, entry = handle.name, handle.architecture, handle.entry
    plugins.load_builder(arch)  # fail early, before any download, if the plugin has no network
    num_classes = handle.num_classes
    if origin is not None and weights is not None:
        weights_path: Path | None = Path(weights)
        weights_info = {"weights": "trained", **{k: origin[k] for k in ("weights_sha256", "weights_url") if k in origin}}
    else:
        if entry is None:
            raise WeightsError(f"model '{name}' is in no registry; pass --weights PATH|URL|random")
        weights_path, weights_info = _resolve_weights(entry, weights)
    import paddle  # after every check that can fail fast
    with cache.staging(cache.models_dir()) as stage:
        args = (arch.name, num_classes, str(weights_path) if weights_path else None, output_op, seed)
        if legacy:
            _save_legacy(*args, stage)
        else:
            save_inference(*args, stage)
        for path in stage.iterdir():  # e.g. pickled .pdiparams.info side files: never kept
            if path.name not in KEEP:
                path.unlink()
        program = cache.program_file(stage).name
        (stage / "deploy.yaml").write_text(_deploy_yaml(arch, output_op, program))
        provenance = {
            "name": name, "architecture": arch.name, "num_classes": num_classes, "output_op": output_op,
            "seed": seed if weights_info["weights"] == "random" else None, "format": program,
            "paddle": paddle.__version__, "zoo": version(), **weights_info,
        }  # fmt: skip
        folder = cache.commit_tree(stage, cache.models_dir(), provenance)
    extra = {k: v for k, v in (origin or {}).items() if k not in provenance}
    cache.set_ref(name, "paddle", {"key": folder.name, "source": "export", **provenance, **extra})
    return folder


def _save_legacy(arch_name: str, num_classes: int, weights_path: str | None, output_op: str, seed: int,
                 out_dir: Path) -> None:  # fmt: skip
    """Run :func:`save_inference` in a child with the legacy (non-PIR) program format."""
    args = json.dumps([arch_name, num_classes, weights_path, output_op, seed, str(out_dir)])
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    proc = subprocess.run([sys.executable, "-m", "zoo.make.export", args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ZooError(f"legacy export of '{arch_name}' failed: {tail[0]}; try the default PIR export")


if __name__ == "__main__":  # the child of _save_legacy
    a = json.loads(sys.argv[1])
    save_inference(a[0], a[1], a[2], a[3], a[4], Path(a[5]))
