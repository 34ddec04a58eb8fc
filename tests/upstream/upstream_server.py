#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""upstream_server - a delay server standing in for an upstream (LLM API, ...).

Usage: upstream_server.py [--port N] [--host ADDR]

Thread per connection, HTTP/1.1 keep-alive. Prints "listening PORT" once the
socket listens (port 0 picks a free one).

  GET /delay?ms=N             answers after N ms, Content-Length body
  GET /stream?ms=N&chunks=K   chunked response: the head and chunk 1 after N/K
                              ms, then one chunk every N/K ms (last at N ms)
  GET /reset                  reads the request, then closes the connection
                              with an RST (SO_LINGER 0), nothing written
  anything else               404

The server does not measure anything: the calling app server measures the
ground truth on its side of the socket.
"""

import argparse
import socket
import socketserver
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

HEAD_MAX = 16384


def _read_head(sock, buf):
    """Returns (head bytes, rest) or (None, buf) on EOF before a full head."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEAD_MAX:
            return None, buf
        try:
            data = sock.recv(65536)
        except OSError:
            return None, buf
        if not data:
            return None, buf
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def _param(query, key, default):
    try:
        return int(query.get(key, [default])[0])
    except ValueError:
        return default


def _sleep_until(deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            head, buf = _read_head(sock, buf)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                return
            method, target, version = parts
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            clen = int(headers.get("content-length", "0") or 0)
            while len(buf) < clen:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[clen:]
            keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
            url = urlsplit(target)
            q = parse_qs(url.query)
            t0 = time.monotonic()
            if method == "GET" and url.path == "/delay":
                ms = _param(q, "ms", 0)
                _sleep_until(t0 + ms / 1000.0)
                body = b"delay ms=%d\n" % ms
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                    b"Connection: %s\r\n\r\n%s"
                    % (len(body), b"keep-alive" if keep else b"close", body))
            elif method == "GET" and url.path == "/stream":
                ms = _param(q, "ms", 0)
                chunks = max(1, _param(q, "chunks", 4))
                for i in range(chunks):
                    _sleep_until(t0 + ms / 1000.0 * (i + 1) / chunks)
                    data = b"chunk %d/%d\n" % (i + 1, chunks)
                    out = b"%x\r\n%s\r\n" % (len(data), data)
                    if i == 0:
                        out = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               b"Transfer-Encoding: chunked\r\nConnection: %s\r\n\r\n"
                               % (b"keep-alive" if keep else b"close")) + out
                    if i == chunks - 1:
                        out += b"0\r\n\r\n"
                    sock.sendall(out)
            elif method == "GET" and url.path == "/reset":
                # RST instead of FIN: linger on, timeout 0
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            else:
                body = b"not found\n"
                sock.sendall(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s"
                    % (len(body), b"keep-alive" if keep else b"close", body))
            if not keep:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    sys.exit(main())
