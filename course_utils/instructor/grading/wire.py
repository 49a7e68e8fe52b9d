"""Plain-data encoding between the grader and the sandbox: JSON with arrays as ``.npy`` bytes.

Nothing is ever pickled: arrays are written and read with ``allow_pickle=False``, so a
value coming back from student code can only be numbers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from typing import Any

import numpy as np

MAX_FRAME = 8 * 1024 * 1024


def encode(value: Any) -> Any:
    """Arrays become ``{"__npy__": base64}``, tuples ``{"__tuple__": [...]}``; lists, dicts,
    numbers and strings pass through."""
    if isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__npy__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, tuple):  # kept a tuple: the student's code may rely on it (shape + (1,))
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} to the sandbox")


def _array(raw: bytes) -> np.ndarray:
    """A ``.npy`` image as an array, after checking that its header describes numbers (no
    objects) whose size is exactly the data that follows: a forged header cannot make the
    reader allocate what was never sent. ValueError otherwise."""
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    reader = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in reader:
        raise ValueError(f"unsupported .npy version {version}")
    shape, _, dtype = reader[version](stream)
    if dtype.hasobject or not all(isinstance(n, int) and 0 <= n for n in shape):
        raise ValueError("not an array of numbers")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(raw) - stream.tell():
        raise ValueError("the array's header does not match its data")
    return np.load(io.BytesIO(raw), allow_pickle=False)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`; arrays are loaded with ``allow_pickle=False``, their headers
    checked against their data first."""
    if isinstance(value, dict):
        if set(value) == {"__npy__"}:
            return _array(base64.b64decode(value["__npy__"], validate=True))
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def send(fd: int, message: dict) -> None:
    """Write one length-prefixed JSON frame to ``fd``."""
    payload = json.dumps(message).encode("utf-8")
    data = struct.pack(">I", len(payload)) + payload
    while data:
        written = os.write(fd, data)
        data = data[written:]


class FrameReader:
    """Incremental reader of length-prefixed JSON frames from untrusted bytes."""

    def __init__(self, limit: int = 64 * 1024 * 1024) -> None:
        self.buffer = b""
        self.total = 0
        self.limit = limit

    def feed(self, data: bytes) -> list[dict]:
        """Add bytes; return every complete, well-formed frame. Garbage raises ``ValueError``."""
        self.total += len(data)
        if self.total > self.limit:
            raise ValueError(f"the sandbox sent more than {self.limit // 2**20} MB")
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            (size,) = struct.unpack(">I", self.buffer[:4])
            if size > MAX_FRAME:
                raise ValueError("oversized frame")
            if len(self.buffer) < 4 + size:
                break
            raw, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
            message = json.loads(raw.decode("utf-8"))
            if not isinstance(message, dict):
                raise ValueError("malformed frame")
            frames.append(message)
        return frames
