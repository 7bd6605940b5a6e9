"""A bounded probe or service, run inside a network namespace:

    ip netns exec NS python -m toolkit.experiment.agent '<spec json>'

Standard library only, so it starts in tens of milliseconds (keep
toolkit/__init__.py and toolkit/experiment/__init__.py free of imports too).
It writes one JSON line per sample to stdout, each written whole at once. It
stops by itself at spec["deadline"] (epoch seconds) at the latest, and at once
on SIGTERM; a sample still in flight then is not written. A bad spec exits 2
with one line on stderr; a socket it cannot open or bind exits 1 likewise.

Modes (spec["mode"]), their fields and their lines ("t" is epoch seconds):

icmp       target, count, interval_ms, timeout_ms: echo requests on a fixed
           schedule (like ping, not waiting for answers), each answered or lost
           after timeout_ms.                   {"t", "seq", "ok", "rtt_ms"}
udp        target, port, count, interval_ms, timeout_ms: the lab's time client
           against a serve_udp_time agent, on a fixed schedule.
                           {"t", "seq", "ok", "rtt_ms", "stale", "out_of_order"}
           stale: its answer came after the next request had been sent (a
           lock-step client would have taken it for the next one's answer);
           out_of_order: an answer to a later request came before it. An answer
           after its request's timeout is ignored: the request is already
           written as lost, and the late answer is counted nowhere.
tcp_connect target, port, count, interval_ms, timeout_ms: one connection per
           attempt, attempt i starting at start + i * interval or when attempt
           i - 1 finished, whichever is later.
                           {"t", "seq", "ok", "connect_ms", "error"?}
           error: "timeout", "refused", "reset", "unreachable", or the errno name.
tcp_transfer target, port, duration_ms, timeout_ms: sends to a serve_tcp_sink
           as fast as it can for duration_ms, every 250 ms
                           {"t", "bytes", "mbit"}     (written in that interval)
           then half-closes and waits up to timeout_ms for the sink's count:
                           {"t", "done": true, "ok", "bytes", "seconds",
                            "goodput_mbit", "error"?}
           bytes: what the sink received; seconds: from the first byte sent to
           the count's arrival (both null when no count came). Stopped early,
           it still writes the final line, with error "stopped" or "deadline".
command    command (argv), count, interval_ms, timeout_ms: runs it count times,
           scheduled like tcp_connect, each killed after timeout_ms (its whole
           process group); its output is discarded.
                           {"t", "seq", "ok", "exit", "ms", "error"?}
icmp_sweep targets, count, interval_ms, timeout_ms: echo requests to every target
           (at most MAX_TARGETS, IPv4 and IPv6 mixed), interleaved: round r
           goes to every target before round r + 1, one send every
           interval_ms; each answered or lost after timeout_ms. It ends once
           every request is answered or lost, then writes one line per target,
           in the order given:
                           {"target", "sent", "answered", "rtt_ms"}
           rtt_ms: the median of the answered requests' round trips (null if
           none). Stopped early, it still writes them (what was in flight
           counts as sent, not answered).
serve_udp_time port: answers each time request (below).   {"ready", "port"}
serve_tcp_sink port: reads each connection to its end, answers the count of
           bytes received (8 bytes, big-endian) and closes.  {"ready", "port"}

The time protocol: a request is TIME (magic, sequence number, the client's send
time); the answer is TIME with the sequence number echoed and the server's time.
"""

from __future__ import annotations

import errno
import json
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# What each mode needs in its spec, besides "mode" and "deadline".
FIELDS = {
    "icmp": ("target", "count", "interval_ms", "timeout_ms"),
    "udp": ("target", "port", "count", "interval_ms", "timeout_ms"),
    "tcp_connect": ("target", "port", "count", "interval_ms", "timeout_ms"),
    "tcp_transfer": ("target", "port", "duration_ms", "timeout_ms"),
    "command": ("command", "count", "interval_ms", "timeout_ms"),
    "icmp_sweep": ("targets", "count", "interval_ms", "timeout_ms"),
    "serve_udp_time": ("port",),
    "serve_tcp_sink": ("port",),
}

TIME = struct.Struct("!4sQd")   # magic, sequence number, epoch seconds
TIME_MAGIC = b"NKT1"
COUNT = struct.Struct("!Q")     # the sink's answer: bytes received
REPORT_S = 0.25                 # tcp_transfer: one line per interval this long
SEND_BUFFER = 64 * 1024         # small, so bytes written track bytes delivered
BLOCK = bytes(64 * 1024)
STOP_SIGNALS = {signal.SIGTERM, signal.SIGALRM}
MAX_TARGETS = 65536             # icmp_sweep: a target's index travels in the echo payload


class SpecError(ValueError):
    pass


class Stopped(BaseException):
    """SIGTERM or the deadline (SIGALRM), raised wherever the mode is blocked.
    A BaseException, so that no `except OSError` on the way swallows it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def emit(line: dict) -> None:
    # One os.write per line: a pipe write under PIPE_BUF is atomic, so a stop
    # arriving mid-write leaves no torn line, and nothing waits in a buffer.
    os.write(1, (json.dumps(line, separators=(",", ":")) + "\n").encode())


def ms_since(began: float) -> float:
    return round((time.monotonic() - began) * 1000, 3)


def family_of(address) -> int | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address)
            return family
        except (OSError, TypeError):
            pass
    return None


def error_name(error: OSError) -> str:
    if isinstance(error, TimeoutError):  # a socket timeout carries no errno
        return "timeout"
    names = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset", errno.EPIPE: "reset",
             errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable", errno.ETIMEDOUT: "timeout"}
    return names.get(error.errno) or errno.errorcode.get(error.errno, str(error)).lower()


# --- the spec ---------------------------------------------------------------

def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


CHECKS = {
    "deadline": (_number, "a time in epoch seconds"),
    "target": (lambda v: family_of(v) is not None, "an IPv4 or IPv6 address"),
    "port": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535, "a port 1-65535"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number, at least 1"),
    "interval_ms": (_number, "milliseconds, at least 0"),
    "timeout_ms": (lambda v: _number(v) and v > 0, "milliseconds, more than 0"),
    "duration_ms": (lambda v: _number(v) and v > 0, "milliseconds, more than 0"),
    "command": (lambda v: isinstance(v, list) and v and all(isinstance(a, str) for a in v), "an argv list of strings"),
    "targets": (lambda v: isinstance(v, list) and 0 < len(v) <= MAX_TARGETS and all(family_of(a) for a in v),
                f"a list of 1 to {MAX_TARGETS} IPv4 or IPv6 addresses"),
}


def parse(argv: list) -> dict:
    if len(argv) != 1:
        raise SpecError("usage: python -m toolkit.experiment.agent '<spec json>'")
    try:
        spec = json.loads(argv[0])
    except ValueError as exc:
        raise SpecError(f"the spec is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError("the spec is not a JSON object")
    mode = spec.get("mode")
    if mode not in FIELDS:
        raise SpecError(f"unknown mode {mode!r}: one of {', '.join(FIELDS)}")
    for field in ("deadline", *FIELDS[mode]):
        check, what = CHECKS[field]
        if field not in spec:
            raise SpecError(f"{mode}: {field} is missing ({what})")
        if not check(spec[field]):
            raise SpecError(f"{mode}: {field} {spec[field]!r} is not {what}")
    return spec


# --- icmp and udp: requests on a fixed schedule -------------------------------

def echo_schedule(spec: dict, sock: socket.socket, send, answers, order: bool) -> None:
    """Sends request seq at start + seq * interval whatever came back, and writes
    each one's line when its answer comes or its timeout passes. `send(seq)`
    sends a request; `answers()` yields the seq of each answer waiting on the
    (non-blocking) socket. `order`: add the udp client's stale/out_of_order."""
    count, interval, timeout = spec["count"], spec["interval_ms"] / 1000, spec["timeout_ms"] / 1000
    start = time.monotonic()
    sent = 0
    pending = {}    # seq -> (epoch, monotonic) of its send, in send order
    highest = -1    # the highest seq answered so far
    while True:
        # Answers first: one that is already here is not lost, however late we look.
        for seq in answers():
            if seq not in pending:  # late, duplicated, or not ours
                continue
            epoch, at = pending.pop(seq)
            line = {"t": epoch, "seq": seq, "ok": True, "rtt_ms": ms_since(at)}
            if order:
                line.update(stale=sent > seq + 1, out_of_order=highest > seq)
                highest = max(highest, seq)
            emit(line)
        now = time.monotonic()
        while pending and now - next(iter(pending.values()))[1] >= timeout:
            seq, (epoch, _) = next(iter(pending.items()))
            del pending[seq]
            emit({"t": epoch, "seq": seq, "ok": False, "rtt_ms": None,
                  **({"stale": False, "out_of_order": False} if order else {})})
        if sent == count and not pending:
            return
        due = start + sent * interval
        if sent < count and now >= due + interval:
            # This process was held up (a busy machine) a whole interval or more:
            # the schedule starts again from now rather than sending the missed
            # requests back to back, as no lock-step client would (the answer to
            # the first would then count as stale: the agent's pause, not the lab's).
            start, due = now - sent * interval, now
        if sent < count and now >= due:
            pending[sent] = (time.time(), time.monotonic())
            try:
                send(sent)
            except OSError:
                pass  # refused by the kernel (no route, full buffer): lost, like one the network dropped
            sent += 1
            continue
        wake = [next(iter(pending.values()))[1] + timeout] if pending else []
        wake += [due] if sent < count else []
        select.select([sock], [], [], max(0.0, min(wake) - time.monotonic()))


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def icmp(spec: dict) -> None:
    target = spec["target"]
    v6 = family_of(target) == socket.AF_INET6
    request, reply = (128, 129) if v6 else (8, 0)
    # Every raw ICMP socket in the namespace sees every echo reply: ours carry
    # our identifier and a random token (other probes may run at the same time).
    ident, token = os.getpid() & 0xFFFF, os.urandom(8)
    family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        sock.setblocking(False)

        def send(seq):
            payload = token + struct.pack("!Q", seq)
            header = struct.pack("!BBHHH", request, 0, 0, ident, seq & 0xFFFF)
            if not v6:  # the kernel fills in ICMPv6 checksums, not ICMP ones
                header = struct.pack("!BBHHH", request, 0, checksum(header + payload), ident, seq & 0xFFFF)
            sock.sendto(header + payload, (target, 0))

        def answers():
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    return
                if not v6:  # IPv4 raw sockets get the IP header too
                    data = data[(data[0] & 0x0F) * 4:]
                if len(data) >= 24 and data[0] == reply and data[4:6] == struct.pack("!H", ident) \
                        and data[8:16] == token:
                    yield struct.unpack_from("!Q", data, 16)[0]

        echo_schedule(spec, sock, send, answers, order=False)


def udp(spec: dict) -> None:
    target, port = spec["target"], spec["port"]
    # Unconnected: a port unreachable then reads as a lost answer, not as an error.
    with socket.socket(family_of(target), socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)

        def send(seq):
            sock.sendto(TIME.pack(TIME_MAGIC, seq, time.time()), (target, port))

        def answers():
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    return
                if len(data) >= TIME.size and data.startswith(TIME_MAGIC):
                    yield TIME.unpack_from(data)[1]

        echo_schedule(spec, sock, send, answers, order=True)


# --- icmp_sweep: many targets at once ------------------------------------------------

SWEEP = struct.Struct("!8sIH")   # the echo payload: token, target index, round


def icmp_sweep(spec: dict) -> None:
    targets, count = spec["targets"], spec["count"]
    interval, timeout = spec["interval_ms"] / 1000, spec["timeout_ms"] / 1000
    families = [family_of(t) for t in targets]
    ident, token = os.getpid() & 0xFFFF, os.urandom(8)
    sent, answered = [0] * len(targets), [0] * len(targets)
    rtts: list = [[] for _ in targets]
    try:
        socks = {}
        for family in sorted(set(families)):
            proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
            socks[family] = socket.socket(family, socket.SOCK_RAW, proto)
            socks[family].setblocking(False)
        try:
            sweep_schedule(targets, families, socks, ident, token, count, interval, timeout, sent, answered, rtts)
        finally:
            for sock in socks.values():
                sock.close()
    finally:  # also when stopped: what was measured so far is written
        for i, target in enumerate(targets):
            emit({"target": target, "sent": sent[i], "answered": answered[i],
                  "rtt_ms": round(median(rtts[i]), 3) if rtts[i] else None})


def median(values: list) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def sweep_schedule(targets, families, socks, ident, token, count, interval, timeout, sent, answered, rtts) -> None:
    """Send k (round k // n to target k % n) at start + k * interval; count each
    answer against its target; forget a request after `timeout`."""
    n = len(targets)
    total = n * count
    start = time.monotonic()
    k = 0
    pending = {}    # (index, round) -> monotonic send time, in send order
    replies = {socket.AF_INET: 0, socket.AF_INET6: 129}
    while True:
        for family, sock in socks.items():
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                except OSError:
                    break  # an ICMP error queued on the socket: not an answer
                if family == socket.AF_INET:
                    data = data[(data[0] & 0x0F) * 4:]
                if len(data) < 8 + SWEEP.size or data[0] != replies[family] or data[4:6] != struct.pack("!H", ident):
                    continue
                got, index, rnd = SWEEP.unpack_from(data, 8)
                at = pending.pop((index, rnd), None) if got == token else None
                if at is not None:
                    answered[index] += 1
                    rtts[index].append((time.monotonic() - at) * 1000)
        now = time.monotonic()
        while pending and now - next(iter(pending.values())) >= timeout:
            del pending[next(iter(pending))]
        if k == total and not pending:
            return
        due = start + k * interval
        if k < total and now >= due:
            index, rnd = k % n, k // n
            pending[(index, rnd)] = time.monotonic()
            sent[index] += 1
            k += 1
            try:
                echo_send(socks[families[index]], targets[index], ident, k & 0xFFFF, SWEEP.pack(token, index, rnd))
            except OSError:
                pass  # refused by the kernel (no route, full buffer): lost, like one the network dropped
            continue
        wake = [next(iter(pending.values())) + timeout] if pending else []
        wake += [due] if k < total else []
        select.select(list(socks.values()), [], [], max(0.0, min(wake) - time.monotonic()))


def echo_send(sock: socket.socket, target: str, ident: int, seq: int, payload: bytes) -> None:
    if sock.family == socket.AF_INET6:  # the kernel fills in ICMPv6 checksums
        sock.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload, (target, 0))
        return
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq)
    sock.sendto(header + payload, (target, 0))


# --- tcp_connect and command: one attempt after another ----------------------

def attempts(spec: dict):
    """(seq, epoch) of each attempt, as it starts: at its scheduled time, or when
    the one before finished if that is later."""
    start = time.monotonic()
    for seq in range(spec["count"]):
        time.sleep(max(0.0, start + seq * spec["interval_ms"] / 1000 - time.monotonic()))
        yield seq, time.time()


def tcp_connect(spec: dict) -> None:
    address = (spec["target"], spec["port"])
    for seq, epoch in attempts(spec):
        began = time.monotonic()
        try:
            with socket.create_connection(address, timeout=spec["timeout_ms"] / 1000):
                emit({"t": epoch, "seq": seq, "ok": True, "connect_ms": ms_since(began)})
        except OSError as error:
            emit({"t": epoch, "seq": seq, "ok": False, "connect_ms": None, "error": error_name(error)})


def run_once(argv: list, timeout: float) -> dict:
    # A stop between the fork and our holding the child would leave it running
    # unbounded: the stop signals wait (blocked) until the try below holds it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS))
    except OSError as error:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return {"ok": False, "exit": None, "error": f"cannot run: {error.strerror or error}"}
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        code = process.wait(timeout)
        return {"ok": code == 0, "exit": code}
    except subprocess.TimeoutExpired:
        return {"ok": False, "exit": None, "error": "timeout"}
    finally:  # also when stopped: nothing it started outlives the agent
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def command(spec: dict) -> None:
    for seq, epoch in attempts(spec):
        began = time.monotonic()
        result = run_once(spec["command"], spec["timeout_ms"] / 1000)
        emit({"t": epoch, "seq": seq, **result, "ms": ms_since(began)})


# --- tcp_transfer ----------------------------------------------------------------

def transfer_failed(error: str) -> dict:
    return {"t": time.time(), "done": True, "ok": False, "bytes": None, "seconds": None, "goodput_mbit": None,
            "error": error}


def send_for(sock: socket.socket, seconds: float) -> float | None:
    """Sends for `seconds`, writing a line per interval; the monotonic time the
    first byte went (None if none did)."""
    sock.settimeout(0.05)  # a closed window must not keep us past an interval's end
    first = None
    mark = time.monotonic()
    end = mark + seconds
    written = 0
    while True:
        now = time.monotonic()
        if now - mark >= REPORT_S or now >= end:
            emit({"t": time.time(), "bytes": written, "mbit": round(written * 8 / (now - mark) / 1e6, 3)})
            mark, written = now, 0
        if now >= end:
            return first
        try:
            written += sock.send(BLOCK)
        except TimeoutError:
            continue
        if first is None:
            first = time.monotonic()


def transfer(spec: dict) -> dict:
    timeout = spec["timeout_ms"] / 1000
    try:
        sock = socket.socket(family_of(spec["target"]), socket.SOCK_STREAM)
    except OSError as error:
        return transfer_failed(error_name(error))
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.settimeout(timeout)
            sock.connect((spec["target"], spec["port"]))
            first = send_for(sock, spec["duration_ms"] / 1000)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(timeout)
            answer = b""
            while len(answer) < COUNT.size:
                chunk = sock.recv(COUNT.size - len(answer))
                if not chunk:
                    return transfer_failed("closed before the count")
                answer += chunk
            arrived = time.monotonic()
        except OSError as error:
            return transfer_failed(error_name(error))
    seconds = round(arrived - first, 6) if first is not None else None
    received = COUNT.unpack(answer)[0]
    return {"t": time.time(), "done": True, "ok": True, "bytes": received, "seconds": seconds,
            "goodput_mbit": round(received * 8 / seconds / 1e6, 3) if seconds else None}


def tcp_transfer(spec: dict) -> None:
    try:
        final = transfer(spec)
    except Stopped as stop:
        emit(transfer_failed(stop.reason))
        raise
    emit(final)


# --- services ------------------------------------------------------------------

def bound_socket(kind: int, port: int) -> socket.socket:
    """Bound to every address: IPv6 and IPv4 both, or IPv4 alone where the kernel has no IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    except OSError:
        sock = socket.socket(socket.AF_INET, kind)
        address = ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def serve_udp_time(spec: dict) -> None:
    with bound_socket(socket.SOCK_DGRAM, spec["port"]) as sock:
        emit({"ready": True, "port": sock.getsockname()[1]})
        while True:
            data, peer = sock.recvfrom(2048)
            if len(data) >= TIME.size and data.startswith(TIME_MAGIC):
                try:
                    sock.sendto(TIME.pack(TIME_MAGIC, TIME.unpack_from(data)[1], time.time()), peer)
                except OSError:
                    pass  # an answer the kernel would not send is a lost answer


def sink(conn: socket.socket) -> None:
    with conn:
        received = 0
        try:
            while chunk := conn.recv(1 << 16):
                received += len(chunk)
            conn.sendall(COUNT.pack(received))
        except OSError:
            pass  # the client went away: there is no one to answer


def serve_tcp_sink(spec: dict) -> None:
    with bound_socket(socket.SOCK_STREAM, spec["port"]) as sock:
        sock.listen(128)
        emit({"ready": True, "port": sock.getsockname()[1]})
        while True:
            conn, _ = sock.accept()
            # Daemon threads: they end with the process, at the deadline at the latest.
            threading.Thread(target=sink, args=(conn,), daemon=True).start()


MODES = {"icmp": icmp, "udp": udp, "tcp_connect": tcp_connect, "tcp_transfer": tcp_transfer, "command": command,
         "icmp_sweep": icmp_sweep, "serve_udp_time": serve_udp_time, "serve_tcp_sink": serve_tcp_sink}


def stop_on_signals(deadline: float) -> None:
    """SIGTERM, and SIGALRM at the deadline, raise Stopped in the main thread,
    interrupting whatever blocking call it is in. Only the first: the mode then
    cleans up without being interrupted again."""
    def stop(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        raise Stopped("stopped" if signum == signal.SIGTERM else "deadline")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    left = deadline - time.time()
    if left <= 0:
        raise Stopped("deadline")
    signal.setitimer(signal.ITIMER_REAL, left)


def stop_with_parent() -> None:
    """SIGTERM (a clean stop) when the process that started us dies: a SIGKILLed
    experiment must not leave its servers holding their ports until their deadline."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux's libc: the deadline still stops us
    if os.getppid() != parent:  # it died before the request took effect
        raise Stopped("stopped")


def main(argv: list) -> int:
    try:
        spec = parse(argv)
    except SpecError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    try:
        stop_on_signals(spec["deadline"])
        stop_with_parent()
        MODES[spec["mode"]](spec)
    except Stopped:
        pass
    except BrokenPipeError:
        pass  # whoever started us stopped listening: nothing left to do
    except OSError as error:
        print(f"agent: {spec['mode']}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
