"""Drives xenkvm's QMP socket with the qemu.qmp library (QEMU's own client).

Usage: client.py SOCKET. Prints one line per step; exits non-zero on failure.
"""
import asyncio
import sys

from qemu.qmp import QMPClient


async def main(path: str) -> None:
    qmp = QMPClient("xenkvm-test")
    await qmp.connect(path)
    version = await qmp.execute("query-version")
    print("version", version["package"])
    while (await qmp.execute("query-status"))["status"] != "shutdown":
        await asyncio.sleep(0.1)
    print("status shutdown")
    names = {c["name"] for c in await qmp.execute("query-commands")}
    assert {"system_powerdown", "xen-shutdown", "balloon", "quit"} <= names, names
    try:
        await qmp.execute("xen-shutdown", {"reason": "explode"})
        raise SystemExit("a bad reason was accepted")
    except Exception as e:  # qemu.qmp raises ExecuteError
        print("error", type(e).__name__, str(e).splitlines()[0])
    await qmp.execute("quit")
    print("quit sent")
    try:
        await qmp.disconnect()
    except EOFError:
        pass  # xenkvm exits after quit, as QEMU does: the socket is already closed


asyncio.run(asyncio.wait_for(main(sys.argv[1]), timeout=60))
