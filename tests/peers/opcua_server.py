#!/usr/bin/env python3
"""A third-party OPC UA server (python asyncua) for fieldlink's interop test.

Serves about 100 variables of every scalar type fieldlink maps, under the namespace
urn:fieldlink:interop, on opc.tcp://127.0.0.1:PORT/ without security, plus a counter that
changes every 200 ms. On stdout it prints one JSON line describing every variable and the
value fieldlink must publish for it (the contract's JSON value), then runs until stdin
closes or it is terminated.

Usage: opcua_server.py PORT
"""

import asyncio
import datetime
import json
import logging
import sys

from asyncua import Server, ua

NAMESPACE = "urn:fieldlink:interop"
PER_TYPE = 7
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def values(i):
    """(type name, variant type, python value, expected contract value) for index i."""
    when = datetime.datetime(2025, 1, 1, 12, 0, i, 125000, tzinfo=datetime.timezone.utc)
    status_names = [
        "Good",
        "BadSensorFailure",
        "UncertainInitialValue",
        "BadCommunicationError",
        "GoodClamped",
        "BadOutOfService",
        "UncertainSensorNotAccurate",
    ]
    status = status_names[i % len(status_names)]
    # Float values with few significant digits: fieldlink publishes an f32 by its shortest
    # decimal form, so 1.1 arrives as 1.1.
    f32 = round(i * 1.1 - 3.3, 1)
    return [
        ("Boolean", ua.VariantType.Boolean, i % 2 == 0, i % 2 == 0),
        ("SByte", ua.VariantType.SByte, -128 + i * 37, -128 + i * 37),
        ("Byte", ua.VariantType.Byte, 255 - i * 30, 255 - i * 30),
        ("Int16", ua.VariantType.Int16, -32768 + i * 9000, -32768 + i * 9000),
        ("UInt16", ua.VariantType.UInt16, 65535 - i * 9000, 65535 - i * 9000),
        ("Int32", ua.VariantType.Int32, -(2**31) + i * 600_000_000, -(2**31) + i * 600_000_000),
        ("UInt32", ua.VariantType.UInt32, 2**32 - 1 - i * 600_000_000, 2**32 - 1 - i * 600_000_000),
        ("Int64", ua.VariantType.Int64, -(2**63) + i * 10**18, -(2**63) + i * 10**18),
        ("UInt64", ua.VariantType.UInt64, 2**64 - 1 - i * 10**18, 2**64 - 1 - i * 10**18),
        ("Float", ua.VariantType.Float, f32, f32),
        ("Double", ua.VariantType.Double, i * 3.141592653589793 - 7.5, i * 3.141592653589793 - 7.5),
        ("String", ua.VariantType.String, f"Teil-{i} größe", f"Teil-{i} größe"),
        (
            "LocalizedText",
            ua.VariantType.LocalizedText,
            ua.LocalizedText(f"Zustand {i}", "de-DE"),
            f"Zustand {i}",
        ),
        (
            "DateTime",
            ua.VariantType.DateTime,
            when,
            int((when - EPOCH) / datetime.timedelta(milliseconds=1)),
        ),
        (
            "StatusCode",
            ua.VariantType.StatusCode,
            ua.StatusCode(getattr(ua.StatusCodes, status)),
            status,
        ),
    ]


async def main(port):
    # asyncua warns that a server without security has no signing policy: intended here.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_server_name("fieldlink interop peer")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(NAMESPACE)
    plant = await server.nodes.objects.add_folder(ua.NodeId("Plant", idx), "Plant")

    variables = []
    for i in range(PER_TYPE):
        for type_name, variant_type, value, expected in values(i):
            name = f"{type_name}.{i}"
            node_id = ua.NodeId(f"Plant.{name}", idx)
            await plant.add_variable(node_id, name, ua.Variant(value, variant_type))
            variables.append(
                {
                    "name": name,
                    "node": f"nsu={NAMESPACE};s=Plant.{name}",
                    "type": type_name,
                    "expected": expected,
                }
            )
    counter = await plant.add_variable(
        ua.NodeId("Plant.Counter", idx), "Counter", ua.Variant(0, ua.VariantType.Int32)
    )

    async with server:
        print(json.dumps({"port": port, "namespace": NAMESPACE, "variables": variables}), flush=True)
        stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        n = 0
        while not stdin_closed.done():
            await asyncio.sleep(0.2)
            n += 1
            await counter.write_value(ua.Variant(n, ua.VariantType.Int32))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
