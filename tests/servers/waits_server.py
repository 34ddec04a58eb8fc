#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A thread-per-request HTTP server whose requests block on known things,
each measured by the server itself and returned in X-Wait-Ns:

  GET /hold/<id>?ms=N   holds a lock for N ms (sleeping: neither lock nor disk)
  GET /lock/<id>        waits for that lock (futex): X-Wait-Ns = time to acquire
  GET /disk/<id>?mib=N  writes N MiB to a file, fsync after each: X-Wait-Ns = fsync time

Usage: waits_server.py --port 0 [--dir DIR]   (prints "listening PORT")
"""

import argparse
import http.server
import os
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    directory = "/tmp"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        wait = 0
        if url.path.startswith("/hold/"):
            with LOCK:
                time.sleep(int(q.get("ms", "100")) / 1000)
        elif url.path.startswith("/lock/"):
            t0 = time.monotonic_ns()
            LOCK.acquire()
            wait = time.monotonic_ns() - t0
            LOCK.release()
        elif url.path.startswith("/disk/"):
            path = os.path.join(self.directory, "waits-%d.dat" % threading.get_ident())
            with open(path, "wb") as f:
                for _ in range(int(q.get("mib", "8"))):
                    f.write(b"x" * (1 << 20))
                    f.flush()
                    t0 = time.monotonic_ns()
                    os.fsync(f.fileno())
                    wait += time.monotonic_ns() - t0
            os.unlink(path)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.send_header("X-Wait-Ns", str(wait))
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    Handler.directory = args.dir
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
