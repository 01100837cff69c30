#!/usr/bin/env python3
"""A pymodbus server for fieldlink's interop tests: a third-party Modbus implementation,
serving known values, read by the agent and by `fieldlink probe`.

Usage: pymodbus_server.py --port PORT [--framer socket|rtu] [--units 1,2]
       pymodbus_server.py --serial /dev/pts/N --framer ascii [--units 1,2]

Before serving it prints one JSON line on stdout: for every unit, the points it holds
(name, area, address, type, order, length for strings, and the value a reader must
decode), so the tests check the agent against the server's own contents. The framer
"socket" is Modbus TCP; "rtu" is RTU framing (with CRC) over TCP, as serial device
servers speak. With --serial it serves a serial port instead (one end of a pty pair in the
tests) with the framer given, "ascii" for Modbus ASCII (9600 8N1: pymodbus cannot open a
pseudo-terminal with 7 data bits or with parity, and ASCII frames are 7-bit text either
way). Stops on SIGTERM or when its stdin closes.
"""

import argparse
import asyncio
import json
import logging
import struct
import sys

from pymodbus import FramerType
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer


def words(fmt, value, order):
    """The registers of `value` packed big-endian as `fmt`, laid out in `order`."""
    raw = struct.pack(">" + fmt, value)
    regs = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        regs.reverse()
    if order in ("BADC", "DCBA"):
        regs = [r[::-1] for r in regs]
    return [int.from_bytes(r, "big") for r in regs]


def layout(unit):
    """The points of `unit`: values differ per unit so a mix-up shows."""
    k = unit
    points = [
        ("temperature", "f32", "ABCD", "f", 21.5 + k),
        ("flow", "f32", "CDAB", "f", -3.25 * k),
        ("speed", "u16", "ABCD", "H", 1450 + k),
        ("count", "u32", "DCBA", "I", 70000 + k),
        ("offset", "i16", "ABCD", "h", -2 - k),
        ("total", "u64", "BADC", "Q", 12345678901 + k),
        ("pressure", "f64", "ABCD", "d", -9876.54321 * k),
        ("delta", "i32", "CDAB", "i", -123456 - k),
    ]
    holding = []
    described = []
    for name, typ, order, fmt, value in points:
        regs = words(fmt, value, order)
        if typ == "f32":
            # What the agent publishes: the shortest decimal of the f32.
            value = float(repr(struct.unpack(">f", struct.pack(">f", value))[0]))
        described.append({
            "name": name, "area": "holding", "address": len(holding),
            "type": typ, "order": order, "value": value,
        })
        holding.extend(regs)
    text = "PUMP-%02d" % unit
    raw = text.encode().ljust(8, b"\0")
    described.append({
        "name": "label", "area": "holding", "address": len(holding),
        "type": "string", "length": 4, "order": "ABCD", "value": text,
    })
    holding.extend(int.from_bytes(raw[i:i + 2], "big") for i in range(0, 8, 2))
    coils = [True, False, unit % 2 == 1, True]
    for i, bit in enumerate(coils):
        described.append({
            "name": "coil%d" % i, "area": "coil", "address": i,
            "type": "bool", "order": "ABCD", "value": bit,
        })
    inputs = [100 + unit, 200 + unit]
    for i, value in enumerate(inputs):
        described.append({
            "name": "input%d" % i, "area": "input", "address": i,
            "type": "u16", "order": "ABCD", "value": value,
        })
    return holding, coils, inputs, described


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--serial")
    parser.add_argument("--framer", choices=["socket", "rtu", "ascii"], default="socket")
    parser.add_argument("--units", default="1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    units = [int(u) for u in args.units.split(",")]
    devices = {}
    contents = {}
    for unit in units:
        holding, coils, inputs, described = layout(unit)
        # A sequential block at 1 holds protocol address 0 (pymodbus's legacy numbering).
        devices[unit] = ModbusDeviceContext(
            hr=ModbusSequentialDataBlock(1, holding),
            co=ModbusSequentialDataBlock(1, coils),
            ir=ModbusSequentialDataBlock(1, inputs),
            di=ModbusSequentialDataBlock(1, [False] * 8),
        )
        contents[str(unit)] = {"points": described, "holding": holding}
    context = ModbusServerContext(devices=devices, single=False)
    print(json.dumps(contents), flush=True)

    framer = {"rtu": FramerType.RTU, "ascii": FramerType.ASCII}.get(args.framer, FramerType.SOCKET)
    if args.serial:
        server = asyncio.create_task(StartAsyncSerialServer(
            context=context, port=args.serial, framer=framer,
            baudrate=9600, bytesize=8, parity="N", stopbits=1))
    else:
        server = asyncio.create_task(StartAsyncTcpServer(
            context=context, address=("127.0.0.1", args.port), framer=framer))
    # The test holds our stdin; when it goes (the test ended or died), so do we.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.cancel()


if __name__ == "__main__":
    asyncio.run(main())
