"""The private network namespace the local NDIF runs in, and the loopback forwarder into it.

Ray and NDIF's gunicorn bind every interface (`0.0.0.0`), and nothing we start may listen outside
127.0.0.1. So the whole stack runs in a fresh network namespace whose only interface is its own
loopback. One small *holder* process owns that namespace:

1. it binds the two ports clients need (API and object store) on the host's 127.0.0.1 first,
2. then moves itself into a new network namespace (`unshare(CLONE_NEWNET)`) and brings `lo` up,
3. then forwards every connection on those host sockets to the same port inside the namespace.

Sockets keep the namespace they were created in, so step 1's listeners stay on the host while the
connections the holder opens after step 2 land inside. Clients therefore use plain
`http://127.0.0.1:PORT` from the host, and presigned object-store URLs (signed for that host:port)
stay valid. The services themselves are started inside with `nsenter -t HOLDER -n`.

Stopping is by namespace: every process whose `/proc/PID/ns/net` is ours was started by us (nothing
else can enter it without root), so `stop` signals exactly those and checks none is left. Standard
library only: the holder runs under whatever Python started `ndif_local`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
STACK_MARKER = "GRADSAE_NDIF_STACK"  # env var every process of the stack inherits


def unshare_network() -> None:
    """Move the calling process into a new, empty network namespace (needs CAP_SYS_ADMIN)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")


def loopback_up() -> None:
    """`ip link set lo up` without needing iproute2: a fresh namespace's loopback starts down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def netns_id(pid: int | str = "self") -> str | None:
    """The network namespace of a process, e.g. `net:[4026532301]`, or None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """Kernel start time of `pid` (clock ticks since boot): tells a live process from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _has_marker(pid: int, stack_id: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{STACK_MARKER}={stack_id}".encode() in env.split(b"\0")


def members(ns: str, stack_id: str | None = None) -> list[int]:
    """PIDs of processes in network namespace `ns` (only those carrying our marker, if `stack_id`)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and netns_id(entry) == ns:
            if stack_id is None or _has_marker(int(entry), stack_id):
                pids.append(int(entry))
    return sorted(pids)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80].strip()
    except OSError:
        return "?"


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of `pids` in MiB: their memory, shared pages counted once."""
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            pass
    return total_kib / 1024


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def terminate(ns: str, holder: int | None, stack_id: str | None, grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process in `ns`, then SIGKILL what is left after `grace_s`; the holder goes last.

    `stack_id=None` trusts the namespace alone (the holder is alive, so it is ours); otherwise only
    processes carrying our marker are touched. Returns the PIDs that were signalled.
    """
    seen: set[int] = set()
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        pids = [p for p in members(ns, stack_id) if p != holder]
        if pids and sig == signal.SIGKILL:
            print(f"ndif_netns: SIGKILL to {len(pids)} processes still up {grace_s:.0f} s after SIGTERM: "
                  + ", ".join(f"{p} ({_name(p)})" for p in pids), file=sys.stderr)
        seen.update(pids)
        _signal_all(pids, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(p != holder for p in members(ns, stack_id)):
            time.sleep(0.2)
    if holder is not None and netns_id(holder) == ns:
        seen.add(holder)
        _signal_all([holder], signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and netns_id(holder) == ns:
            time.sleep(0.1)
        if netns_id(holder) == ns:
            _signal_all([holder], signal.SIGKILL)
    return sorted(seen)


# ---------------------------------------------------------------- the holder process


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, port: int) -> None:
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)  # inside the namespace
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        for w in (client_w, up_w):
            w.close()


async def _serve(listeners: list[socket.socket]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    for sock in listeners:
        port = sock.getsockname()[1]
        servers.append(await asyncio.start_server(
            lambda r, w, port=port: _forward(r, w, port), sock=sock, limit=1 << 20))
    await stop.wait()
    for server in servers:
        server.close()


def holder_main(ports: list[int], ready_file: Path) -> int:
    """Bind `ports` on the host loopback, enter a new netns, report readiness, forward until SIGTERM."""
    listeners = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            sock.setblocking(False)
            listeners.append(sock)
        unshare_network()
        loopback_up()
    except OSError as exc:
        reason = "port busy" if exc.errno == errno.EADDRINUSE else str(exc)
        ready_file.write_text(json.dumps({"error": f"{reason} ({exc})"}))
        return 1
    ready_file.write_text(json.dumps({"pid": os.getpid(), "netns": netns_id(), "start": start_time(os.getpid())}))
    asyncio.run(_serve(listeners))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="internal: the namespace holder of gradsae_nn.ndif_local")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    sys.exit(holder_main(args.port, args.ready_file))
