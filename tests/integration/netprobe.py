#!/usr/bin/env python3
"""Tiny, bounded traffic probes for integration tests, run inside a namespace
with `ip netns exec NS python netprobe.py ...`. Every mode stops by itself.

    serve-udp PORT SECONDS      answer each datagram with the sender's address
    serve-tcp PORT SECONDS      answer each connection with the peer's address
    udp HOST PORT SECONDS       send one datagram; print the answer or TIMEOUT
    tcp HOST PORT SECONDS       connect; print the answer, TIMEOUT or REFUSED
    sink-tcp PORT SECONDS       accept one connection; print the bits/s received
                                (counted from the first byte) when it closes
    send-tcp HOST PORT SECONDS  send as fast as possible for SECONDS, then close
"""

import socket
import sys
import time


def serve_udp(port: int, seconds: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                _, peer = s.recvfrom(2048)
            except socket.timeout:
                return
            s.sendto(peer[0].encode(), peer)


def serve_tcp(port: int, seconds: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(8)
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                conn, peer = s.accept()
            except socket.timeout:
                return
            with conn:
                conn.sendall(peer[0].encode())


def sink_tcp(port: int, seconds: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(1)
        print("READY", flush=True)
        s.settimeout(seconds)
        conn, _ = s.accept()
        with conn:
            conn.settimeout(seconds)
            total, first, last = 0, None, None
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    chunk = conn.recv(1 << 16)
                except socket.timeout:
                    break
                if not chunk:
                    break
                now = time.monotonic()
                if first is None:
                    first = now
                else:
                    total += len(chunk)  # the first chunk only starts the clock
                last = now
        print(f"{total * 8 / max(1e-6, (last or 0) - (first or 0)):.0f}", flush=True)


def send_tcp(host: str, port: int, seconds: float) -> None:
    block = b"x" * 65536
    with socket.create_connection((host, port), timeout=5) as s:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            s.sendall(block)


def udp(host: str, port: int, seconds: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(seconds)
        s.sendto(b"probe", (host, port))
        try:
            return s.recv(2048).decode()
        except socket.timeout:
            return "TIMEOUT"
        except ConnectionRefusedError:
            return "REFUSED"


def tcp(host: str, port: int, seconds: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=seconds) as s:
            return s.recv(2048).decode() or "EMPTY"
    except socket.timeout:
        return "TIMEOUT"
    except ConnectionRefusedError:
        return "REFUSED"
    except OSError as exc:
        return f"ERROR {exc.errno}"


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve-udp":
        serve_udp(int(args[0]), float(args[1]))
    elif mode == "serve-tcp":
        serve_tcp(int(args[0]), float(args[1]))
    elif mode == "udp":
        print(udp(args[0], int(args[1]), float(args[2])))
    elif mode == "tcp":
        print(tcp(args[0], int(args[1]), float(args[2])))
    elif mode == "sink-tcp":
        sink_tcp(int(args[0]), float(args[1]))
    elif mode == "send-tcp":
        send_tcp(args[0], int(args[1]), float(args[2]))
    else:
        sys.exit(f"unknown mode {mode}")
