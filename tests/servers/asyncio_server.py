#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Single-threaded asyncio HTTP/1.x test server for agentprof.

Usage: asyncio_server.py --port N [--truth FILE] [--host ADDR] [--recv-size N]

Same endpoints, response headers and truth lines as cpu_server.c, but every
connection is served by one event-loop thread, interleaved:

  GET  /cpu/<id>?ms=N[&after=M]    burn N ms of thread CPU, 200 + small body;
                                   then M ms more once the response is out
                                   (logging, clean-up: in the truth's CPU)
  POST /echo/<id>?ms=N             read the body in <=1000-byte pieces (the loop
                                   recv()s at most --recv-size, default 1000, bytes
                                   per call), burn N ms,
                                   respond with the body length (several writes)
  GET  /stream/<id>?ms=N&chunks=K  chunked response, K chunks, N/K ms burnt before
                                   each chunk; yields to the loop between chunks
  GET  /pool/<id>?ms=N             burn N ms in the one thread of a thread pool
                                   (run_in_executor), then respond; the worker's
                                   CPU is in the truth's cpu_ns (worker_cpu_ns)
  anything else                    404

CPU accounting: the burn is a synchronous busy loop on time.thread_time_ns(), so
it runs on the event-loop thread. Truth fields:
  span_cpu_ns  all thread CPU between head parsed and response written,
               including whatever else ran on the loop thread meanwhile
               (the loop's own recv()/send() callbacks, other connections)
  own_cpu_ns   only this request's handler segments (the meter is paused
               across every await, so other connections' handlers and the
               loop's callbacks are left out)
  overlapped   true if another request was in flight (head parsed, response
               not yet written) at any time during this one
  cpu_ns       span_cpu_ns if not overlapped (the loop worked for this request
               alone, so all of its CPU is this request's), else own_cpu_ns
The X-Thread-Cpu-Ns response header is own_cpu_ns up to the response head.
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

BODY_READ_PIECE = 1000
ECHO_WRITE_PIECE = 8
MS_MAX = 60000
CHUNKS_MAX = 1000
HEAD_MAX = 16384

truth_fp = None
inflight = set()  # requests between head parsed and response written
recv_size = 0
# One thread: its jobs follow each other, and each is handed over by a wakeup.
POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1)


class ArrivalReader(asyncio.StreamReader):
    """A StreamReader that remembers when the next request's first bytes came.

    The loop hands data over in the same iteration as the recv() that read it,
    so this is within microseconds of agentprof's start of the request. Taking
    the clock later, after readuntil() returns, leaves the task wake-up, the
    head scan and any collector run in between outside the truth's span.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrival_ns = None

    def feed_data(self, data):
        if self.arrival_ns is None:
            self.arrival_ns = time.monotonic_ns()
        super().feed_data(data)

    def request_done(self):
        """Body bytes fed meanwhile are not the next request's arrival; bytes
        still buffered are (_buffer is private, but there since 3.4)."""
        if not self._buffer:
            self.arrival_ns = None


class CpuMeter:
    """Thread CPU of one request, paused while the handler awaits."""

    def __init__(self):
        self.total = 0
        self.seg = time.thread_time_ns()

    def now(self):
        return self.total + time.thread_time_ns() - self.seg

    async def wait(self, aw):
        self.total += time.thread_time_ns() - self.seg
        try:
            return await aw
        finally:
            self.seg = time.thread_time_ns()


def burn_cpu_ns(ns):
    """Busy-loops for ns of thread CPU; reads the clock every few microseconds."""
    start = time.thread_time_ns()
    x = 1
    while time.thread_time_ns() - start < ns:
        for _ in range(50):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


def query_int(query, key, default):
    try:
        return int(query.get(key, [default])[0])
    except ValueError:
        return default


def route_id(path, prefix):
    """Returns the id if path is '<prefix><id>' with a non-empty id without '/'."""
    if not path.startswith(prefix):
        return None
    rid = path[len(prefix):]
    return rid if rid and "/" not in rid else None


class Request:
    def __init__(self, writer, wall0, meter, span0, head_len):
        self.writer = writer
        self.wall0 = wall0
        self.meter = meter
        self.span0 = span0
        self.method = "?"
        self.target = ""
        self.minor = 1
        self.keep_alive = True
        self.headers = {}
        self.request_id = None
        self.status = 0
        self.rx_bytes = head_len
        self.tx_bytes = 0
        self.ttfb_ns = None
        self.overlapped = False
        self.worker_cpu_ns = 0

    def parse(self, head):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            raise ValueError("bad request line")
        self.method, self.target, version = parts
        self.minor = int(version[-1])
        self.keep_alive = self.minor == 1
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("bad header line")
            self.headers[name.strip().lower()] = value.strip()
        conn = self.headers.get("connection", "").lower()
        if "close" in conn:
            self.keep_alive = False
        elif "keep-alive" in conn:
            self.keep_alive = True
        if "x-request-id" in self.headers:
            rid = self.headers["x-request-id"]
            self.request_id = "".join(c for c in rid if 0x20 <= ord(c) < 0x7F)[:255]
        cl = self.headers.get("content-length", "0")
        if not cl.isdigit():
            raise ValueError("bad content-length")
        self.content_length = int(cl)
        self.chunked_body = "chunked" in self.headers.get("transfer-encoding", "").lower()

    def head(self, status, reason, extra):
        self.status = status
        lines = [
            f"HTTP/1.{self.minor} {status} {reason}",
            "Server: agentprof-asyncio-server",
            f"Connection: {'keep-alive' if self.keep_alive else 'close'}",
            f"X-Thread-Cpu-Ns: {self.meter.now()}",
        ]
        lines += extra
        if self.request_id is not None:
            lines.append(f"X-Request-Id: {self.request_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, *pieces):
        """Writes the pieces with one transport write (one send()) and drains."""
        data = b"".join(pieces)
        self.writer.write(data)
        if self.ttfb_ns is None:  # after the send(), like cpu_server
            self.ttfb_ns = time.monotonic_ns() - self.wall0
        self.tx_bytes += len(data)
        await self.meter.wait(self.writer.drain())

    async def respond_simple(self, status, reason, body):
        head = self.head(
            status, reason, ["Content-Type: text/plain", f"Content-Length: {len(body)}"]
        )
        await self.send(head, body)

    async def read_body(self, reader):
        """Reads Content-Length bytes in pieces of at most BODY_READ_PIECE."""
        left = self.content_length
        while left > 0:
            piece = await self.meter.wait(reader.read(min(left, BODY_READ_PIECE)))
            if not piece:
                raise ConnectionError("EOF in request body")
            left -= len(piece)
            self.rx_bytes += len(piece)
        return self.content_length


async def handle_cpu(req, query):
    ms = clamp(query_int(query, "ms", 0), 0, MS_MAX)
    burn_cpu_ns(ms * 1_000_000)
    body = f"cpu ms={ms} id={req.request_id or '-'}\n".encode()
    await req.respond_simple(200, "OK", body)
    burn_cpu_ns(clamp(query_int(query, "after", 0), 0, MS_MAX) * 1_000_000)


def burn_in_worker(ns):
    """Runs in the pool's thread; returns the CPU it burnt there."""
    start = time.thread_time_ns()
    burn_cpu_ns(ns)
    return time.thread_time_ns() - start


async def handle_pool(req, query):
    ms = clamp(query_int(query, "ms", 0), 0, MS_MAX)
    job = asyncio.get_running_loop().run_in_executor(POOL, burn_in_worker, ms * 1_000_000)
    req.worker_cpu_ns += await req.meter.wait(job)
    body = f"pool ms={ms} id={req.request_id or '-'}\n".encode()
    await req.respond_simple(200, "OK", body)


async def handle_echo(req, query, reader):
    ms = clamp(query_int(query, "ms", 0), 0, MS_MAX)
    got = await req.read_body(reader)
    burn_cpu_ns(ms * 1_000_000)
    body = f"{got}\n".encode()
    head = req.head(200, "OK", ["Content-Type: text/plain", f"Content-Length: {len(body)}"])
    await req.send(head)
    for off in range(0, len(body), ECHO_WRITE_PIECE):
        await req.send(body[off:off + ECHO_WRITE_PIECE])


async def handle_stream(req, query):
    ms = clamp(query_int(query, "ms", 0), 0, MS_MAX)
    chunks = clamp(query_int(query, "chunks", 4), 1, CHUNKS_MAX)
    per_chunk = ms * 1_000_000 // chunks
    framed = req.minor == 1
    if not framed:
        req.keep_alive = False
    for i in range(chunks):
        if i > 0:
            # let other connections run between chunks
            await req.meter.wait(asyncio.sleep(0))
        burn_cpu_ns(per_chunk)
        data = f"chunk {i + 1}/{chunks} id={req.request_id or '-'}\n".encode()
        pieces = []
        if i == 0:
            extra = ["Content-Type: text/plain"]
            if framed:
                extra.append("Transfer-Encoding: chunked")
            pieces.append(req.head(200, "OK", extra))
        if framed:
            pieces += [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            pieces.append(data)
        await req.send(*pieces)
    if framed:
        await req.send(b"0\r\n\r\n")


def write_truth(req, own_cpu_ns, span_cpu_ns, wall_ns):
    if truth_fp is None:
        return
    rec = {
        "request_id": req.request_id,
        "method": req.method,
        "path": req.target,
        "cpu_ns": (own_cpu_ns if req.overlapped else span_cpu_ns) + req.worker_cpu_ns,
        "worker_cpu_ns": req.worker_cpu_ns,
        "wall_ns": wall_ns,
        "ttfb_ns": req.ttfb_ns,
        "span_cpu_ns": span_cpu_ns,
        "own_cpu_ns": own_cpu_ns,
        "overlapped": req.overlapped,
        "tid": threading.get_native_id(),
        "pid": os.getpid(),
        "status": req.status,
        "rx_bytes": req.rx_bytes,
        "tx_bytes": req.tx_bytes,
        "server": "asyncio",
    }
    # single thread: no lock needed
    truth_fp.write(json.dumps(rec) + "\n")
    truth_fp.flush()


async def serve_one(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    except asyncio.LimitOverrunError:
        return False
    if len(head) > HEAD_MAX:
        return False
    # from the head's arrival: the wall span encloses the CPU span and
    # agentprof's span, so wall_ns >= cpu_ns
    wall0 = reader.arrival_ns or time.monotonic_ns()
    span0 = time.thread_time_ns()
    req = Request(writer, wall0, CpuMeter(), span0, len(head))
    if inflight:
        req.overlapped = True
        for other in inflight:
            other.overlapped = True
    inflight.add(req)
    try:
        await dispatch(req, head, reader)
    finally:
        inflight.discard(req)
        reader.request_done()
    own_cpu_ns = req.meter.now()
    span_cpu_ns = time.thread_time_ns() - span0
    wall_ns = time.monotonic_ns() - wall0
    if req.status != 400:  # like cpu_server: no truth line for unparsable requests
        write_truth(req, own_cpu_ns, span_cpu_ns, wall_ns)
    return req.keep_alive


async def dispatch(req, head, reader):
    try:
        req.parse(head)
    except ValueError:
        req.keep_alive = False
        await req.respond_simple(400, "Bad Request", b"bad request\n")
        return

    split = urlsplit(req.target)
    query = parse_qs(split.query)
    if req.chunked_body:
        req.keep_alive = False
        await req.respond_simple(
            501, "Not Implemented", b"chunked request bodies are not supported\n"
        )
    elif req.method == "GET" and route_id(split.path, "/cpu/"):
        await req.read_body(reader)
        await handle_cpu(req, query)
    elif req.method == "POST" and route_id(split.path, "/echo/"):
        await handle_echo(req, query, reader)
    elif req.method == "GET" and route_id(split.path, "/stream/"):
        await req.read_body(reader)
        await handle_stream(req, query)
    elif req.method == "GET" and route_id(split.path, "/pool/"):
        await req.read_body(reader)
        await handle_pool(req, query)
    else:
        await req.read_body(reader)
        await req.respond_simple(404, "Not Found", b"not found\n")


async def handle_conn(reader, writer):
    transport = writer.transport
    if recv_size and hasattr(transport, "max_size"):
        # Private knob of the selector socket transport: the loop recv()s at
        # most this many bytes per call, so large bodies arrive in many pieces.
        transport.max_size = recv_size
    try:
        while await serve_one(reader, writer):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def main_async(args):
    loop = asyncio.get_running_loop()

    def protocol():  # asyncio.start_server, with the timestamping reader
        reader = ArrivalReader(limit=2 * HEAD_MAX)
        return asyncio.StreamReaderProtocol(reader, handle_conn)

    server = await loop.create_server(protocol, args.host, args.port, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    global truth_fp, recv_size
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--truth", help="append one JSON line per completed request")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument(
        "--recv-size",
        type=int,
        default=BODY_READ_PIECE,
        help="max bytes per recv() on connections (0: asyncio default, 256 KiB)",
    )
    args = ap.parse_args()
    recv_size = args.recv_size
    if args.truth:
        truth_fp = open(args.truth, "a", encoding="utf-8")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
