"""A minimal ONNX writer: enough of the protobuf wire format to save a small feed-forward graph.

Why not `torch.onnx.export`: in the installed torch both exporters need the `onnx` (and the new one
`onnxscript`) Python package, which this project does not depend on; onnxruntime, which runs the
result, is already installed. The ONNX schema is plain protobuf, so the few messages a CNN needs
(ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto) are written by
hand below, field numbers as in onnx/onnx.proto. Output is deterministic: same graph, same bytes.

Usage:
    g = OnnxGraph("face-cnn")
    g.input("x", ["n", 1, 48, 48]); w = g.initializer("w", weights)
    y = g.node("Conv", ["x", w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.output(y, ["n", 16, 48, 48]); data = g.to_bytes()
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

IR_VERSION = 8
OPSET = 17
_FLOAT = 1  # TensorProto.DataType.FLOAT
_INT64 = 7
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 6, 7


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # protobuf encodes negative int64 as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field_no: int, wire: int) -> bytes:
    return _varint((field_no << 3) | wire)


def _int(field_no: int, value: int) -> bytes:
    return _key(field_no, 0) + _varint(int(value))


def _bytes(field_no: int, value: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(value)) + value


def _str(field_no: int, value: str) -> bytes:
    return _bytes(field_no, value.encode("utf-8"))


def _float(field_no: int, value: float) -> bytes:
    return _key(field_no, 5) + struct.pack("<f", float(value))


def _attribute(name: str, value: Any) -> bytes:
    msg = _str(1, name)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return msg + _int(3, int(value)) + _int(20, _ATTR_INT)
    if isinstance(value, (float, np.floating)):
        return msg + _float(2, float(value)) + _int(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return msg + _bytes(4, value.encode("utf-8")) + _int(20, _ATTR_STRING)
    values = list(value)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return msg + b"".join(_int(8, int(v)) for v in values) + _int(20, _ATTR_INTS)
    return msg + b"".join(_float(7, float(v)) for v in values) + _int(20, _ATTR_FLOATS)


def _tensor(name: str, array: np.ndarray) -> bytes:
    arr = np.asarray(array)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        arr, dtype = arr.astype("<f4"), _FLOAT
    elif arr.dtype.kind in "iu":
        arr, dtype = arr.astype("<i8"), _INT64
    else:
        raise TypeError(f"unsupported initializer dtype {arr.dtype}")
    dims = b"".join(_int(1, d) for d in arr.shape)
    return dims + _int(2, dtype) + _str(8, name) + _bytes(9, np.ascontiguousarray(arr).tobytes())


def _value_info(name: str, shape: Sequence[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape)
    tensor_type = _int(1, _FLOAT) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


@dataclass
class OnnxGraph:
    """Nodes are appended in execution order; every node gets one output named after its index."""

    name: str
    _nodes: list[bytes] = field(default_factory=list)
    _inits: list[bytes] = field(default_factory=list)
    _inputs: list[bytes] = field(default_factory=list)
    _outputs: list[bytes] = field(default_factory=list)
    _metadata: dict[str, str] = field(default_factory=dict)

    def input(self, name: str, shape: Sequence[int | str]) -> str:
        self._inputs.append(_value_info(name, shape))
        return name

    def initializer(self, name: str, array: np.ndarray) -> str:
        self._inits.append(_tensor(name, array))
        return name

    def node(self, op_type: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        out = output or f"{op_type.lower()}_{len(self._nodes)}"
        msg = b"".join(_str(1, i) for i in inputs) + _str(2, out) + _str(3, f"n{len(self._nodes)}") + _str(4, op_type)
        msg += b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items()))
        self._nodes.append(msg)
        return out

    def output(self, name: str, shape: Sequence[int | str]) -> None:
        self._outputs.append(_value_info(name, shape))

    def metadata(self, key: str, value: str) -> None:
        self._metadata[str(key)] = str(value)

    def to_bytes(self, producer: str = "msa-studio") -> bytes:
        graph = b"".join(_bytes(1, n) for n in self._nodes) + _str(2, self.name)
        graph += b"".join(_bytes(5, t) for t in self._inits)
        graph += b"".join(_bytes(11, v) for v in self._inputs) + b"".join(_bytes(12, v) for v in self._outputs)
        model = _int(1, IR_VERSION) + _str(2, producer) + _bytes(7, graph)
        model += _bytes(8, _str(1, "") + _int(2, OPSET))
        model += b"".join(_bytes(14, _str(1, k) + _str(2, v)) for k, v in sorted(self._metadata.items()))
        return model
