#!/usr/bin/env python3
"""Modbus TCP devices served by pymodbus, a third-party implementation, for the bench's
`modbus-1s` scenario: one server (one device, unit 1) per port, each with REGISTERS
holding registers from address 0.

Usage: pymodbus_devices.py --ports P1,P2,... --registers 100

Register r of device d follows a plant-like signal, computed from the wall clock when a
request reads it (the device's action), so every read sees current values:
r mod 4 = 0: a temperature, 22.5 + 2.5 sin(2 pi t / (240 + 7 d) + r), x100;
          1: a ramp, 100 ((t + 3 r) mod (60 + d)) / (60 + d), x100;
          2: a pressure, 50 + 10 (0.5 sin(t / 7 + r) + 0.3 sin(t / 31 + d) + 0.2 sin(t / 157)), x100;
          3: an on/off state flipping every 5 + (r + d) mod 26 seconds.
The same layout as modbus-scale's devices, so the agent's point tables scale the first
three by 0.01 and read the fourth as a bool. Stops when its stdin closes.
"""

import argparse
import asyncio
import functools
import logging
import math
import sys
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def register(device, r, t):
    """Register r of device `device` at time t (seconds since the epoch)."""
    kind = r % 4
    if kind == 0:
        value = 22.5 + 2.5 * math.sin(2 * math.pi * t / (240 + 7 * device) + r)
    elif kind == 1:
        period = 60 + device
        value = 100 * ((t + 3 * r) % period) / period
    elif kind == 2:
        value = 50 + 10 * (
            0.5 * math.sin(t / 7 + r) + 0.3 * math.sin(t / 31 + device) + 0.2 * math.sin(t / 157)
        )
    else:
        return int(t // (5 + (r + device) % 26)) % 2
    return round(value * 100)


async def refresh(device, _function_code, start_address, address, count, registers, _values):
    """Writes the current values of the registers a read asks for into the device's memory."""
    t = time.time()
    for a in range(address, address + count):
        registers[a - start_address] = register(device, a, t)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True)
    parser.add_argument("--registers", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    servers = []
    for device, port in enumerate(int(p) for p in args.ports.split(",")):
        sim = SimDevice(
            id=1,
            simdata=[SimData(address=0, count=args.registers, values=0, datatype=DataType.REGISTERS)],
            action=functools.partial(refresh, device),
        )
        server = ModbusTcpServer(sim, address=("127.0.0.1", port))
        servers.append(asyncio.create_task(server.serve_forever()))
    # The bench holds our stdin; when it goes (the run ended or the bench died), so do we.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.cancel()


if __name__ == "__main__":
    asyncio.run(main())
