"""ONNX model files: zoo's ``zoo.*`` metadata, and the check every .onnx passes before zoo caches it.

Apart from :mod:`zoo.make.convert` (which writes the metadata), the runtime reads it and archive/pull check published files;
neither needs the converter, so this lives on its own (it imports onnx and onnxruntime only inside functions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import ConversionError
from zoo.util import first_line as _first_line

PREFIX = "zoo."  # every metadata key zoo writes starts with this
JSON_KEYS = frozenset({"paddle_files", "input", "num_classes", "labels", "palette", "opset"})  # values stored as JSON


def check_onnx(path: Path) -> None:
    """ConversionError unless ``path`` is a self-contained ONNX model that passes onnx.checker and opens in ORT."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConversionError(f"{path} is not a readable ONNX model ({exc}); convert or download it again") from None
    external = [
        t.name or "(unnamed)" for t in _model_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        shown = ", ".join(external[:3]) + (f" and {len(external) - 3} more" if len(external) > 3 else "")
        raise ConversionError(
            f"{path} keeps {len(external)} tensor(s) as external data ({shown}); zoo only uses self-contained .onnx "
            "files — save the model with all weights inside the file"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(
            f"{path} fails onnx.checker: {_first_line(exc)}; if it was just converted, its model.pdiparams is "
            "probably incomplete — run 'zoo cache verify'"
        ) from None
    del model
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"ONNX Runtime cannot load {path}: {_first_line(exc)}") from None


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``zoo.*`` metadata of an .onnx file, prefix removed and JSON values decoded ({} if none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return decode_metadata({p.key: p.value for p in model.metadata_props})


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """``zoo.*`` entries of a metadata map (e.g. ORT's ``get_modelmeta().custom_metadata_map``), decoded."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(PREFIX):
            short = key[len(PREFIX) :]
            try:
                out[short] = json.loads(value) if short in JSON_KEYS else value
            except (ValueError, RecursionError) as exc:  # whatever the file's author wrote
                raise ValueError(f"{key} is not JSON ({type(exc).__name__})") from None
    return out


def _model_tensors(model: Any) -> list[Any]:
    """Every TensorProto of a model: its graph's and those inside its local functions (FunctionProto nodes)."""
    return _all_tensors(model.graph) + [t for function in model.functions for t in _all_tensors(function)]


def _all_tensors(graph: Any) -> list[Any]:
    """Every TensorProto of a graph (or a function): initializers and node attributes, subgraphs included."""
    tensors = list(getattr(graph, "initializer", ())) + [s.values for s in getattr(graph, "sparse_initializer", ())]
    for node in graph.node:
        for attr in node.attribute:
            tensors += ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                tensors += _all_tensors(sub)
    return tensors


