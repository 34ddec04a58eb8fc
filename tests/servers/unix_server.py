#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""An HTTP/1.0 server on a unix socket, as behind a local proxy (nginx to
gunicorn): one request per connection, which the server closes after the
response without reading the client's EOF.

  GET /work/<id>?ms=N   N ms of CPU, then 200 and a short body

Each request appends a truth line to --truth: request_id (X-Request-Id),
path, status, and cpu_ns, the handler thread's CPU time from reading the
request to the last response byte written (CLOCK_THREAD_CPUTIME_ID).

Usage: unix_server.py --path SOCKET --truth FILE
(prints "listening SOCKET")
"""

import argparse
import http.server
import json
import os
import socketserver
import sys
import time
import urllib.parse


def spin(ms):
    end = time.thread_time_ns() + ms * 1_000_000
    while time.thread_time_ns() < end:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        t0 = time.thread_time_ns()
        url = urllib.parse.urlsplit(self.path)
        ms = int(dict(urllib.parse.parse_qsl(url.query)).get("ms", "5"))
        spin(ms)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.server.truth.append({"request_id": self.headers.get("X-Request-Id"),
                                  "path": self.path, "status": 200,
                                  "cpu_ns": time.thread_time_ns() - t0})

    def log_message(self, *args):
        pass


class Server(socketserver.UnixStreamServer):
    def shutdown_request(self, request):
        super().shutdown_request(request)  # close(): the request is over
        with open(self.truth_path, "a") as f:
            for t in self.truth:
                f.write(json.dumps(t) + "\n")
        self.truth.clear()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--path", required=True)
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()
    if os.path.exists(a.path):
        os.unlink(a.path)
    srv = Server(a.path, Handler)
    srv.truth_path = a.truth
    srv.truth = []
    print("listening %s" % a.path, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
