#!/usr/bin/env python3
"""A python-snap7 server for fieldlink's S7 interop tests: a third-party S7comm
implementation (ISO-on-TCP, COTP, setup communication, read var), serving known values,
read by the agent and by `fieldlink probe s7`.

Usage: snap7_server.py --port PORT

Before serving it prints one JSON line on stdout: the points it holds (name, Siemens
address, type, length for strings, bit for bits of words, and the value a reader must
decode), so the tests check the agent against the server's own contents. Stops on
SIGTERM or when its stdin closes.
"""

import argparse
import json
import logging
import struct
import sys
import time

import snap7
from snap7.type import SrvArea

# (name, area, index, byte, type, value[, extra]); the value is what a reader decodes.
POINTS = [
    ("speed", "DB", 1, 0, "i16", -1450),
    ("temperature", "DB", 1, 2, "f32", 123.456),
    ("count", "DB", 1, 6, "u32", 4000000000),
    ("delta", "DB", 1, 10, "i32", -123456),
    ("energy", "DB", 1, 14, "f64", -9876.54321),
    ("status", "DB", 1, 22, "u16", 0x8004),
    ("running", "DB", 1, 24, "bool", True, {"bit": 1}),
    ("recipe", "DB", 1, 26, "string", "AX-7", {"length": 10}),
    ("level", "DB", 2, 0, "u8", 200),
    ("offset", "DB", 2, 1, "i8", -3),
    ("total", "DB", 2, 2, "u64", 12345678901),
    ("flag", "MK", 0, 10, "bool", True, {"bit": 0}),
    ("mw", "MK", 0, 12, "u16", 321),
    ("sensor", "PE", 0, 0, "bool", True, {"bit": 3}),
    ("analog", "PE", 0, 64, "i16", 27648),
    ("setpoint", "PA", 0, 2, "u8", 77),
]

FORMATS = {"i16": ">h", "u16": ">H", "i32": ">i", "u32": ">I", "f32": ">f", "f64": ">d",
           "u8": ">B", "i8": ">b", "u64": ">Q"}
PREFIX = {"MK": "M", "PE": "I", "PA": "Q"}
WIDTH = {"u8": "B", "i8": "B", "u64": "B", "f64": "B", "string": "B",
         "i16": "W", "u16": "W", "i32": "D", "u32": "D", "f32": "D"}


def shortest_f32(raw):
    """The shortest decimal that reads back as the f32 in `raw`: what the agent publishes."""
    value = struct.unpack(">f", raw)[0]
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == raw:
            return float(text)
    return value


def address(area, index, byte, typ, extra):
    """The Siemens notation of a point."""
    if typ == "bool":
        bit = extra["bit"]
        return f"DB{index}.DBX{byte}.{bit}" if area == "DB" else f"{PREFIX[area]}{byte}.{bit}"
    width = WIDTH[typ]
    return f"DB{index}.DB{width}{byte}" if area == "DB" else f"{PREFIX[area]}{width}{byte}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    memory = {("DB", 1): bytearray(64), ("DB", 2): bytearray(16), ("MK", 0): bytearray(32),
              ("PE", 0): bytearray(128), ("PA", 0): bytearray(8)}
    described = []
    for point in POINTS:
        name, area, index, byte, typ, value = point[:6]
        extra = point[6] if len(point) > 6 else {}
        block = memory[(area, index)]
        if typ == "bool":
            block[byte] |= 1 << extra["bit"]
        elif typ == "string":
            raw = value.encode("ascii")
            block[byte] = extra["length"]
            block[byte + 1] = len(raw)
            block[byte + 2:byte + 2 + len(raw)] = raw
        else:
            raw = struct.pack(FORMATS[typ], value)
            block[byte:byte + len(raw)] = raw
            if typ == "f32":
                value = shortest_f32(raw)
        entry = {"name": name, "address": address(area, index, byte, typ, extra),
                 "type": typ, "value": value}
        if typ == "string":
            entry["length"] = extra["length"]
        described.append(entry)
    # A bit of a word: `bit = 2` of the status word (0x8004).
    described.append({"name": "status_bit2", "address": "DB1.DBW22", "type": "u16",
                      "bit": 2, "value": True})

    server = snap7.server.Server(log=False)
    areas = {"DB": SrvArea.DB, "MK": SrvArea.MK, "PE": SrvArea.PE, "PA": SrvArea.PA}
    for (area, index), block in memory.items():
        server.register_area(areas[area], index, block)
    server.start(tcp_port=args.port)
    print(json.dumps({"points": described}), flush=True)
    try:
        # Serve until the test closes our stdin (or kills us).
        while sys.stdin.read(1):
            time.sleep(0.05)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
