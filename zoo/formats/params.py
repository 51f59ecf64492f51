"""Paddle's combined ``.pdiparams`` file, read without paddle: one reader of its tensor records and of the programs
that name them.

``paddle.jit.save`` and ``save_inference_model`` write a model's parameters, sorted by name, into one file of
records: uint32 version (0), uint64 LoD levels (each a uint64 size and its bytes), uint32 version, int32 size of a
``TensorDesc`` protobuf, the TensorDesc (field 1 data type, field 2 dims), then the raw data. Two checks use it:

* :func:`check_params` (before a conversion): every record is complete — paddle2onnx turns a missing or truncated
  params file into a model without those weights and reports success, so zoo walks the records first;
* :func:`check_model` (when an inference archive is unpacked, :func:`zoo.store.archive.extract_paddle_model`): the
  file holds exactly the parameters its program declares, each with the declared dtype and shape, in name order, and
  nothing after — so a decompression bomb of zeros, a cut-off or padded file or another network's weights is refused
  at pull time, before it is cached. The program names its parameters: a PIR ``model.json`` as ``builtin.parameter``
  ops (``"#": "p"``, the name last in ``"A"``, dtype and shape in the output type), a legacy ``model.pdmodel`` (a
  ``ProgramDesc`` protobuf) as the persistable dense-tensor variables of block 0.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ArchiveError, IntegrityError

# VarType.Type codes of the dense data types (paddle/fluid/framework/framework.proto; checked against paddle 3.3.1's
# paddle.base.core.VarDesc.VarType) → (numpy-style name, bytes per element). 19 is SIZE_T ("Tensor<size_t> is used
# in C++") in Paddle 2.x's framework.proto and absent from 3.x: 8 bytes on the 64-bit platforms Paddle ships for.
DTYPES: dict[int, tuple[str, int]] = {
    0: ("bool", 1), 1: ("int16", 2), 2: ("int32", 4), 3: ("int64", 8), 4: ("float16", 2), 5: ("float32", 4),
    6: ("float64", 8), 19: ("size_t", 8), 20: ("uint8", 1), 21: ("int8", 1), 22: ("bfloat16", 2),
    23: ("complex64", 8), 24: ("complex128", 16), 32: ("float8_e4m3fn", 1), 33: ("float8_e5m2", 1),
    36: ("uint16", 2), 37: ("uint32", 4), 38: ("uint64", 8),
}  # fmt: skip
# PIR's type names (``0.t_f32``) for the same dtypes
PIR_DTYPES = {"t_bool": "bool", "t_i16": "int16", "t_i32": "int32", "t_i64": "int64", "t_f16": "float16",
              "t_f32": "float32", "t_f64": "float64", "t_ui8": "uint8", "t_i8": "int8", "t_bf16": "bfloat16",
              "t_c64": "complex64", "t_c128": "complex128"}  # fmt: skip
DENSE_TENSOR = 7  # VarType.Type.DENSE_TENSOR (LOD_TENSOR): the variables a params file holds
MAX_LOD_LEVELS = 16
MAX_DESC_BYTES = 4096  # a TensorDesc is a dtype and a few dims: anything larger is not a record header

Param = tuple[str, str, tuple[int, ...]]  # (name, dtype, shape)


class BadRecord(ValueError):
    """A record that cannot be read; ``str()`` says what is wrong with it ("is cut short", ...)."""


# ---- the records -------------------------------------------------------------------------------------------------


def read_record(f: BinaryIO, size: int) -> tuple[str | None, tuple[int, ...]]:
    """Read one record's header at the file position and skip its data; its (dtype, shape). dtype None: a code not in
    :data:`DTYPES` (the data could not be skipped). BadRecord if the header or the data is incomplete or unreadable."""
    try:
        version, levels = _unpack("<IQ", f.read(12))
        if version != 0 or levels > MAX_LOD_LEVELS:
            raise BadRecord("has no valid record header")
        for _ in range(levels):
            (skip,) = _unpack("<Q", f.read(8))
            if f.tell() + skip > size:
                raise BadRecord("is cut short")
            f.seek(skip, os.SEEK_CUR)
        _, desc_size = _unpack("<Ii", f.read(8))
        if not 0 < desc_size <= MAX_DESC_BYTES:
            raise BadRecord(f"has a tensor description of {desc_size} bytes")
        desc = f.read(desc_size)
        if len(desc) != desc_size:
            raise BadRecord("is cut short")
        code, shape = _tensor_code(desc)
    except BadRecord:
        raise
    except (ValueError, KeyError, IndexError):
        raise BadRecord("has an unreadable tensor description") from None
    if any(d < 0 for d in shape):
        raise BadRecord(f"has a negative dimension {list(shape)}")
    if code not in DTYPES:
        return None, shape
    name, itemsize = DTYPES[code]
    end = f.tell() + math.prod(shape) * itemsize
    if end > size:
        raise BadRecord(f"needs bytes up to {end}, the file has {size}")
    f.seek(end)
    return name, shape


def check_params(path: Path, hint: str = "fetch the model again") -> int:
    """Walk the tensor records of a combined ``.pdiparams`` file; IntegrityError if one is cut short. Returns the
    count (of records up to the first of a data type this reader does not know, where it stops rather than guess)."""
    size = path.stat().st_size
    if size == 0:
        raise IntegrityError(f"{path} is empty; {hint}")
    count = 0
    with open(path, "rb") as f:
        while f.tell() < size:
            offset = f.tell()
            try:
                dtype, _ = read_record(f, size)
            except BadRecord as exc:
                what = "is not a Paddle params file" if "header" in str(exc) and count == 0 else "is truncated or corrupt"
                raise IntegrityError(f"{path} {what}: tensor #{count + 1} (at byte {offset}) {exc}; {hint}") from None
            if dtype is None:
                return count
            count += 1
    return count


def check_model(program: Path, params: Path, hint: str) -> int:
    """Raise ArchiveError unless ``params`` holds exactly ``program``'s parameters; return how many it holds."""
    expected = sorted(program_parameters(program, hint))
    size = params.stat().st_size
    with open(params, "rb") as f:
        for index, (name, dtype, shape) in enumerate(expected):
            offset = f.tell()
            try:
                got = read_record(f, size)
            except BadRecord as exc:
                raise ArchiveError(f"{params.name} is not the program's parameters: tensor #{index + 1} (at byte "
                                   f"{offset}) {exc}; {hint}") from None  # fmt: skip
            if got != (dtype, shape):
                raise ArchiveError(
                    f"{params.name} does not match {program.name}: tensor #{index + 1} (at byte {offset}) is "
                    f"{got[0] or 'of an unknown type'}{list(got[1])}, the program's parameter '{name}' is "
                    f"{dtype}{list(shape)}; {hint}"
                )
        if f.tell() != size:
            raise ArchiveError(
                f"{params.name} has {size - f.tell()} bytes after the program's {len(expected)} parameters "
                f"(it should end at byte {f.tell()}); {hint}"
            )
    return len(expected)


# ---- the programs ------------------------------------------------------------------------------------------------


def program_parameters(program: Path, hint: str) -> list[Param]:
    """The parameters a PIR ``model.json`` or legacy ``model.pdmodel`` program declares."""
    data = program.read_bytes()
    try:
        found = _pir_parameters(data) if program.suffix == ".json" else _legacy_parameters(data)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError, RecursionError,
            OverflowError, MemoryError) as exc:  # a crafted program: nested 100,000 deep, a dimension of 1e400 ...
        raise ArchiveError(f"{program.name} is not a readable Paddle program ({type(exc).__name__}); {hint}") from None
    if not found:
        raise ArchiveError(f"{program.name} declares no parameters: not a Paddle inference program; {hint}")
    names = [name for name, _, _ in found]
    if len(set(names)) != len(names):
        raise ArchiveError(f"{program.name} declares a parameter twice; {hint}")
    return found


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
                dtype = PIR_DTYPES[dtype_entry["#"].rpartition(".")[2]]
                found.append((str(name), dtype, tuple(int(d) for d in shape)))
    return found


def _legacy_parameters(data: bytes) -> list[Param]:
    blocks = [value for field, value in proto_fields(data) if field == 1]
    if not blocks:
        raise ValueError("no blocks")
    found: list[Param] = []
    for field, var in proto_fields(blocks[0]):
        if field != 3:  # BlockDesc.vars
            continue
        desc = dict(proto_fields(var))
        name, persistable = desc[1].decode(), bool(desc.get(3, 0))
        var_type = dict(proto_fields(desc[2]))
        if not persistable or var_type[1] != DENSE_TENSOR:  # feed/fetch lists and activations are not saved
            continue
        dtype, dims = tensor_desc(dict(proto_fields(var_type[3]))[1])  # LoDTensorDesc.tensor
        found.append((name, dtype, dims))
    return found


# ---- protobuf, the little of it these files need -----------------------------------------------------------------


def varint(buf: bytes, i: int) -> tuple[int, int]:
    """The varint at ``buf[i]`` and the index after it; IndexError past the end, ValueError if too long."""
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def proto_fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 2:
            length, i = varint(buf, i)
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


def tensor_desc(buf: bytes) -> tuple[str, tuple[int, ...]]:
    """(dtype, dims) of a serialized TensorDesc; ValueError for a data type code not in :data:`DTYPES`."""
    code, dims = _tensor_code(buf)
    if code not in DTYPES:
        raise ValueError(f"unknown data type code {code}")
    return DTYPES[code][0], dims


def _tensor_code(buf: bytes) -> tuple[int, tuple[int, ...]]:
    """(data type code, dims) of a TensorDesc: field 1 data type, field 2 repeated int64 dims (packed or not)."""
    code, dims = None, []
    for field, value in proto_fields(buf):
        if field == 1:
            code = value
        elif field == 2 and isinstance(value, int):
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif field == 2:  # packed
            j = 0
            while j < len(value):
                dim, j = varint(value, j)
                dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
    if code is None:
        raise ValueError("TensorDesc without a data type")
    return code, tuple(dims)


def _unpack(fmt: str, data: bytes) -> tuple[int, ...]:
    import struct

    try:
        return struct.unpack(fmt, data)
    except struct.error:
        raise BadRecord("is cut short") from None
