#!/usr/bin/env python3
"""A DL/T 645-2007 meter for fieldlink's interop tests: the `dlt645` package's meter server
(a third-party implementation of the standard), on a serial port (one end of a pty pair),
holding known values that the agent and `fieldlink probe dlt645` read.

Usage: dlt645_meter.py --port /dev/pts/N --address 000012345678

Before serving it prints one JSON line on stdout: its address and points (data
identifier and the value a reader must decode). Stops when its stdin closes.
"""

import argparse
import json
import sys

from dlt645.service.serversvc.server_service import MeterServerService

POINTS = [
    ("energy", 0x00010000, 12345.67),
    ("voltage_a", 0x02010100, 230.1),
    ("current_a", 0x02020100, -1.5),
    ("power", 0x02030000, 3.2109),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True)
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    meter = MeterServerService.new_rtu_server(args.port, 8, 1, 9600, "E", 1.0)
    # The package stores the address's digit pairs in the order it is given and sends them
    # as they are stored, while the standard sends the least significant pair first: the
    # printed address is given with its pairs reversed.
    pairs = [args.address[i:i + 2] for i in range(0, 12, 2)]
    meter.set_address("".join(reversed(pairs)))
    for _, di, value in POINTS:
        setter = meter.set_00 if di >> 24 == 0 else meter.set_02
        if not setter(di, value):
            sys.exit(f"cannot set {di:08X}")
    if not meter.start():
        sys.exit(f"cannot open {args.port}")
    described = [{"name": n, "address": f"{di:08X}", "value": v} for n, di, v in POINTS]
    print(json.dumps({"address": args.address, "points": described}), flush=True)
    try:
        while sys.stdin.read(1):
            pass
    finally:
        meter.stop()


if __name__ == "__main__":
    main()
