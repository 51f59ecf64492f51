"""A Paddle inference model's ``model.pdiparams``, checked against its program's parameter list (no paddle import).

Run when an inference archive is unpacked (:func:`zoo.store.archive.extract_paddle_model`), so a params file that is not the
program's — a decompression bomb of zeros, a cut-off or padded file, another network's weights — is refused at pull
time, before it is cached, rather than at convert time.

The program names its parameters: a PIR ``model.json`` as ``builtin.parameter`` ops (``"#": "p"``, the name last in
``"A"``, dtype and shape in the output type), a legacy ``model.pdmodel`` (a ``ProgramDesc`` protobuf) as the
persistable dense-tensor variables of block 0. ``paddle.jit.save`` and ``save_inference_model`` write them, sorted by
name, into one combined file of records: uint32 version (0), uint64 LoD levels (each a uint64 size and its bytes),
uint32 version, int32 size of a ``TensorDesc`` protobuf, the TensorDesc (field 1 dtype, field 2 dims), the raw data.
The check: the same number of records as parameters, each with the parameter's dtype and shape, in name order, and
nothing after the last one.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ArchiveError

# Paddle's VarType codes for the dense dtypes, and their item sizes
_PROTO_DTYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
                 20: "uint8", 21: "int8", 22: "bfloat16", 23: "complex64", 24: "complex128"}  # fmt: skip
_ITEM_SIZE = {"bool": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2, "float32": 4, "float64": 8, "uint8": 1,
              "int8": 1, "bfloat16": 2, "complex64": 8, "complex128": 16}  # fmt: skip
# PIR's type names (``0.t_f32``) for the same dtypes
_PIR_DTYPES = {"t_bool": "bool", "t_i16": "int16", "t_i32": "int32", "t_i64": "int64", "t_f16": "float16",
               "t_f32": "float32", "t_f64": "float64", "t_ui8": "uint8", "t_i8": "int8", "t_bf16": "bfloat16",
               "t_c64": "complex64", "t_c128": "complex128"}  # fmt: skip
_LOD_TENSOR = 7  # VarType.Type.LOD_TENSOR (DENSE_TENSOR)
_MAX_LOD_LEVELS = 16

Param = tuple[str, str, tuple[int, ...]]  # (name, dtype, shape)


def check_model(program: Path, params: Path, hint: str) -> int:
    """Raise ArchiveError unless ``params`` holds exactly ``program``'s parameters; return how many it holds."""
    expected = sorted(program_parameters(program, hint))
    size = params.stat().st_size
    with open(params, "rb") as f:
        for index, (name, dtype, shape) in enumerate(expected):
            offset = f.tell()
            got = _record(f, size, params, index, hint)
            if got != (dtype, shape):
                raise ArchiveError(
                    f"{params.name} does not match {program.name}: tensor #{index + 1} (at byte {offset}) is "
                    f"{got[0]}{list(got[1])}, the program's parameter '{name}' is {dtype}{list(shape)}; {hint}"
                )
        if f.tell() != size:
            raise ArchiveError(
                f"{params.name} has {size - f.tell()} bytes after the program's {len(expected)} parameters "
                f"(it should end at byte {f.tell()}); {hint}"
            )
    return len(expected)


def program_parameters(program: Path, hint: str) -> list[Param]:
    """The parameters a PIR ``model.json`` or legacy ``model.pdmodel`` program declares."""
    data = program.read_bytes()
    try:
        found = _pir_parameters(data) if program.suffix == ".json" else _legacy_parameters(data)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{program.name} is not a readable Paddle program ({type(exc).__name__}); {hint}") from None
    if not found:
        raise ArchiveError(f"{program.name} declares no parameters: not a Paddle inference program; {hint}")
    names = [name for name, _, _ in found]
    if len(set(names)) != len(names):
        raise ArchiveError(f"{program.name} declares a parameter twice; {hint}")
    return found


# ---- PIR model.json ---------------------------------------------------------------------------------------------


def _pir_parameters(data: bytes) -> list[Param]:
    doc = json.loads(data)
    if doc["base_code"]["magic"] != "pir":
        raise ValueError("not a PIR program")
    found: list[Param] = []
    for region in doc["program"]["regions"]:
        for block in region["blocks"]:
            for op in block["ops"]:
                if op.get("#") != "p":  # builtin.parameter
                    continue
                name = op["A"][-1]
                dtype_entry, shape = op["O"]["TT"]["D"][:2]
                dtype = _PIR_DTYPES[dtype_entry["#"].rpartition(".")[2]]
                found.append((str(name), dtype, tuple(int(d) for d in shape)))
    return found


# ---- legacy model.pdmodel (ProgramDesc protobuf) ------------------------------------------------------------------


def _legacy_parameters(data: bytes) -> list[Param]:
    blocks = [value for field, value in _fields(data) if field == 1]
    if not blocks:
        raise ValueError("no blocks")
    found: list[Param] = []
    for field, var in _fields(blocks[0]):
        if field != 3:  # BlockDesc.vars
            continue
        desc = dict(_fields(var))
        name, persistable = desc[1].decode(), bool(desc.get(3, 0))
        var_type = dict(_fields(desc[2]))
        if not persistable or var_type[1] != _LOD_TENSOR:  # feed/fetch lists and activations are not saved
            continue
        tensor = dict(_fields(var_type[3]))[1]  # LoDTensorDesc.tensor
        dtype, dims = _tensor_desc(tensor)
        found.append((name, dtype, dims))
    return found


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]  # IndexError past the end: a cut-off message
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > len(buf):
                raise ValueError("field runs past the message")
            value, i = buf[i : i + length], i + length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            value = None
        else:
            raise ValueError(f"wire type {wire}")
        out.append((field, value))
    if i != len(buf):
        raise ValueError("cut-off message")
    return out


def _tensor_desc(buf: bytes) -> tuple[str, tuple[int, ...]]:
    """(dtype, dims) of a TensorDesc: field 1 data type, field 2 repeated int64 dims (packed or not)."""
    dtype, dims = None, []
    for field, value in _fields(buf):
        if field == 1:
            dtype = _PROTO_DTYPES[value]
        elif field == 2 and isinstance(value, int):
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif field == 2:  # packed
            j = 0
            while j < len(value):
                dim, j = _varint(value, j)
                dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
    if dtype is None:
        raise ValueError("TensorDesc without a data type")
    return dtype, tuple(dims)


# ---- model.pdiparams records --------------------------------------------------------------------------------------


def _record(f: BinaryIO, size: int, params: Path, index: int, hint: str) -> tuple[str, tuple[int, ...]]:
    """Read one tensor record's header, skip its data; its (dtype, shape)."""
    offset = f.tell()

    def bad(what: str) -> ArchiveError:
        return ArchiveError(f"{params.name} is not the program's parameters: tensor #{index + 1} (at byte {offset}) "
                            f"{what}; {hint}")  # fmt: skip

    try:
        version, levels = struct.unpack("<IQ", _read(f, 12))
        if version != 0 or levels > _MAX_LOD_LEVELS:
            raise bad("has no valid record header")
        for _ in range(levels):
            (skip,) = struct.unpack("<Q", _read(f, 8))
            if f.tell() + skip > size:
                raise bad("is cut short")
            f.seek(skip, 1)
        _, desc_size = struct.unpack("<Ii", _read(f, 8))
        if not 0 < desc_size <= 4096:
            raise bad(f"has a tensor description of {desc_size} bytes")
        dtype, shape = _tensor_desc(_read(f, desc_size))
    except (EOFError, struct.error):
        raise bad("is cut short") from None
    except (ValueError, KeyError, IndexError):
        raise bad("has an unreadable tensor description") from None
    if any(d < 0 for d in shape):
        raise bad(f"has a negative dimension {list(shape)}")
    end = f.tell() + math.prod(shape) * _ITEM_SIZE[dtype]
    if end > size:
        raise bad(f"needs bytes up to {end}, the file has {size}")
    f.seek(end)
    return dtype, shape


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


# the protobuf readers, for zoo.formats.program (which reads the same programs' inputs and outputs)
proto_fields = _fields
tensor_desc = _tensor_desc
PIR_DTYPES = _PIR_DTYPES
