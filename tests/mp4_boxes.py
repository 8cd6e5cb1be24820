"""The numbers in an MP4's index boxes, located so a test can overwrite them (crafted and fuzzed files).

An MP4 is a tree of boxes (4-byte big-endian size, 4-byte type, payload); the sample tables (``stts``, ``stsz``,
``stco``...) under ``moov/trak/mdia/minf/stbl`` hold the counts and times every reader trusts.  :func:`index_fields`
lists where each such number sits in the file, so a test can replace it with a hostile value without re-encoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

# Boxes whose payload is a list of boxes (the path from the top down to the sample tables).
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}


@dataclass(frozen=True)
class Field:
    name: str  # "trak0/stts.entry_count"
    offset: int  # byte offset of the big-endian number in the file
    size: int  # 4 or 8 bytes

    def read(self, data: bytes) -> int:
        return int.from_bytes(data[self.offset : self.offset + self.size], "big")

    def write(self, data: bytes, value: int) -> bytes:
        out = bytearray(data)
        out[self.offset : self.offset + self.size] = (value % (1 << (8 * self.size))).to_bytes(self.size, "big")
        return bytes(out)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, offset of the box, offset past its end)`` of the boxes in ``data[start:end]``, one level."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos, pos + size
        pos += size


def _walk(data: bytes, start: int, end: int, path: str) -> Iterator[tuple[str, bytes, int, int]]:
    tracks = 0
    for kind, lo, hi in boxes(data, start, end):
        name = kind.decode("latin-1")
        if kind == b"trak":
            name, tracks = f"trak{tracks}", tracks + 1
        here = f"{path}/{name}" if path else name
        yield here, kind, lo, hi
        if kind in CONTAINERS:
            yield from _walk(data, lo + 8, hi, here)


# Offsets of the numbers in each full box (version 0 layouts; the version byte is checked), from the box start.
_COUNTED_TABLES = {b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4, b"elst": 12}


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def index_fields(data: bytes, entries_per_table: int = 2) -> list[Field]:
    """Every count, duration and time scale in the index of ``data``, plus the first entries of each table."""
    fields: list[Field] = []
    for path, kind, lo, _hi in _walk(data, 0, len(data), ""):
        short = path.removeprefix("moov/").replace("/mdia/minf/stbl", "").replace("/mdia", "").replace("/edts", "")
        version = data[lo + 8]
        if kind in (b"mvhd", b"mdhd") and version == 0:
            fields += [Field(f"{short}.timescale", lo + 20, 4), Field(f"{short}.duration", lo + 24, 4)]
        elif kind == b"tkhd" and version == 0:
            fields.append(Field(f"{short}.duration", lo + 28, 4))
        elif kind == b"stsz":
            fields += [Field(f"{short}.sample_size", lo + 12, 4), Field(f"{short}.sample_count", lo + 16, 4)]
            listed = 0 if _u32(data, lo + 12) else min(_u32(data, lo + 16), entries_per_table)
            fields += [Field(f"{short}.entry{i}", lo + 20 + 4 * i, 4) for i in range(listed)]
        elif kind in _COUNTED_TABLES and version == 0:
            fields.append(Field(f"{short}.entry_count", lo + 12, 4))
            width = _COUNTED_TABLES[kind]
            for i in range(min(_u32(data, lo + 12), entries_per_table)):
                for j in range(0, width, 4):
                    fields.append(Field(f"{short}.entry{i}.{j // 4}", lo + 16 + width * i + j, 4))
    return [f for f in fields if f.offset + f.size <= len(data)]


def field(data: bytes, name: str) -> Field:
    """The field called ``name`` (as listed by :func:`index_fields`)."""
    for f in index_fields(data):
        if f.name == name:
            return f
    raise KeyError(f"{name} not in {[f.name for f in index_fields(data)]}")
