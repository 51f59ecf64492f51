"""What a Paddle inference program takes and gives, read from ``model.json`` or ``model.pdmodel`` (no paddle import).

:func:`signature` answers the questions ``zoo add`` asks of someone's own export: the input's name and shape (a fixed
``[1, 3, H, W]`` means the model only runs, and only converts, at that size), and how the program ends — PaddleSeg's
``WrappedModel`` appends ``argmax`` (int32 class ids) or ``softmax``; ``--output_op none`` leaves logits — with the
class count: the channel count of the tensor the argmax reduces, or of the float output itself.

PIR ``model.json``: ``1.data`` ops carry the input's name and shape, ``1.fetch`` ops the outputs; every op output has
an id (``"%"``) and a type (dtype, dims), so the producer of a fetched value and its input's dims are looked up by id.
Legacy ``model.pdmodel``: block 0's ``feed``/``fetch`` ops name the variables, whose ``TensorDesc`` give the dims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ArchiveError
from zoo.formats.params import PIR_DTYPES, proto_fields, tensor_desc


@dataclass(frozen=True)
class Signature:
    """A program's input and first output."""

    input_name: str  # the feed name, e.g. "x"
    input_shape: tuple[int, ...]  # [N, 3, H, W]; -1 where dynamic
    output_op: str  # "argmax", "softmax" or "none" (logits)
    output_dtype: str  # "int32", "int64", "float32", ...
    num_classes: int | None  # classes it scores (None where the program does not say)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) when the program takes only one spatial size."""
        if len(self.input_shape) == 4 and self.input_shape[2] > 0 and self.input_shape[3] > 0:
            return (self.input_shape[2], self.input_shape[3])
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"input_name": self.input_name, "input_shape": list(self.input_shape), "output_op": self.output_op,
                "output_dtype": self.output_dtype, "num_classes": self.num_classes}  # fmt: skip


def signature(program: Path) -> Signature:
    """The input and output of a PIR ``model.json`` or legacy ``model.pdmodel``; ArchiveError if unreadable."""
    data = program.read_bytes()
    try:
        return _pir(data) if program.suffix == ".json" else _legacy(data)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError, StopIteration) as exc:
        raise ArchiveError(f"{program.name}: cannot read the program's input and output ({type(exc).__name__}: "
                           f"{exc}); is it a PaddleSeg inference export?") from None  # fmt: skip


def _classes(op_kind: str, source_dims: tuple[int, ...], out_dims: tuple[int, ...]) -> int | None:
    dims = source_dims if op_kind == "argmax" else out_dims
    return dims[1] if len(dims) == 4 and dims[1] > 0 else None


# ---- PIR ------------------------------------------------------------------------------------------------------------


def _pir_type(entry: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    dtype, dims = entry["TT"]["D"][:2]
    return PIR_DTYPES[dtype["#"].rpartition(".")[2]], tuple(int(d) for d in dims)


def _pir(data: bytes) -> Signature:
    doc = json.loads(data)
    if doc["base_code"]["magic"] != "pir":
        raise ValueError("not a PIR program")
    ops = [op for region in doc["program"]["regions"] for block in region["blocks"] for op in block["ops"]]
    types: dict[int, tuple[str, tuple[int, ...]]] = {}
    producer: dict[int, dict[str, Any]] = {}
    for op in ops:
        outs = op.get("O")
        for out in outs if isinstance(outs, list) else [outs] if isinstance(outs, dict) else []:
            if isinstance(out, dict) and out.get("%") and out.get("TT", {}).get("#", "").endswith("t_dtensor"):
                types[out["%"]] = _pir_type(out)
                producer[out["%"]] = op
    data_op = next(op for op in ops if op.get("#") == "1.data")
    attrs = {a["N"]: a["AT"]["D"] for a in data_op["A"]}
    fetch = next(op for op in ops if op.get("#") == "1.fetch")
    value = fetch["I"][0]["%"]
    dtype, dims = types[value]
    op = producer[value]
    kind = {"1.argmax": "argmax", "1.softmax": "softmax"}.get(op.get("#", ""), "none")
    source_dims = types[op["I"][0]["%"]][1] if kind == "argmax" else dims
    return Signature(str(attrs["name"]), tuple(int(d) for d in attrs["shape"]), kind, dtype,
                     _classes(kind, source_dims, dims))  # fmt: skip


# ---- legacy ProgramDesc -----------------------------------------------------------------------------------------


def _legacy(data: bytes) -> Signature:
    block = next(value for field, value in proto_fields(data) if field == 1)
    dims: dict[str, tuple[str, tuple[int, ...]]] = {}
    ops: list[tuple[str, dict[str, list[str]], dict[str, list[str]]]] = []
    for field, value in proto_fields(block):
        if field == 3:  # VarDesc: 1 name, 2 VarType (1 type, 3 LoDTensorDesc (1 TensorDesc))
            desc = dict(proto_fields(value))
            var_type = dict(proto_fields(desc[2]))
            if 3 in var_type:
                dims[desc[1].decode()] = tensor_desc(dict(proto_fields(var_type[3]))[1])
        elif field == 4:  # OpDesc: 1 inputs, 2 outputs (Var: 1 parameter, 2 arguments), 3 type
            inputs: dict[str, list[str]] = {}
            outputs: dict[str, list[str]] = {}
            op_type = ""
            for f, v in proto_fields(value):
                if f in (1, 2):
                    var = proto_fields(v)
                    slot = next(x for k, x in var if k == 1).decode()
                    (inputs if f == 1 else outputs)[slot] = [x.decode() for k, x in var if k == 2]
                elif f == 3:
                    op_type = v.decode()
            ops.append((op_type, inputs, outputs))
    feed = next(outs["Out"][0] for kind, _, outs in ops if kind == "feed")
    fetched = next(ins["X"][0] for kind, ins, _ in ops if kind == "fetch")
    made_by = next((kind, ins) for kind, ins, outs in ops if fetched in sum(outs.values(), []))
    kind = {"arg_max": "argmax", "softmax": "softmax"}.get(made_by[0], "none")
    dtype, out_dims = dims[fetched]
    source_dims = dims[made_by[1]["X"][0]][1] if kind == "argmax" else out_dims
    return Signature(feed, dims[feed][1], kind, dtype, _classes(kind, source_dims, out_dims))
