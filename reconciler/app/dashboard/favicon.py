"""A `/favicon.ico` for the site root.

HTML pages name their icon, but browsers ask plain-text pages' site for `/favicon.ico` anyway
(every log under `logs/` is one): without this file each log view logs a 404 in the console.
A 16x16 PNG in an ICO container, built from the standard formats with zlib and struct.
"""

from __future__ import annotations

import struct
import zlib

SIZE = 16
COLOUR = (0x2B, 0x6C, 0xB0, 0xFF)  # the blue of static/favicon.svg


def _png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgba) * width  # filter type 0, then RGBA pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def favicon_ico() -> bytes:
    png = _png(SIZE, SIZE, COLOUR)
    directory = struct.pack("<HHH", 0, 1, 1)  # reserved, type icon, one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png
