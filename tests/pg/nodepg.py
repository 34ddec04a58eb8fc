#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""The node + pg test server (tests/pg/node_pg_server.js) and its npm packages.

tests/pg/node/ holds package.json and the package-lock.json that pins pg
(node-postgres) and everything it pulls in. install() runs `npm ci` from
those two files into build/tests/node-pg/ (build output, never beside the
sources) once, and again whenever either file changes; the server finds the
packages through NODE_PATH (env()). node and npm themselves are Debian
packages (tools/deps.sh installs them if missing; a NodeSource nodejs
bundles npm).
"""

import hashlib
import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "node_pg_server.js")
SRC = os.path.join(HERE, "node")
PREFIX = os.path.join(ROOT, "build", "tests", "node-pg")
FILES = ("package.json", "package-lock.json")
NPM_TIMEOUT_S = 600


def _digest():
    h = hashlib.sha256()
    for name in FILES:
        with open(os.path.join(SRC, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def install():
    """Installs the locked npm packages unless already installed from these
    very files. Returns None on success, else why it failed (for the test to
    report as a failure)."""
    stamp = os.path.join(PREFIX, ".installed-from")
    want = _digest()
    try:
        with open(stamp) as f:
            if f.read().strip() == want and os.path.isdir(os.path.join(PREFIX, "node_modules",
                                                                       "pg")):
                return None
    except FileNotFoundError:
        pass
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            return "%s is not installed: run tools/deps.sh as root (sudo make deps)" % tool
    os.makedirs(PREFIX, exist_ok=True)
    for name in FILES:
        shutil.copyfile(os.path.join(SRC, name), os.path.join(PREFIX, name))
    cmd = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        r = subprocess.run(cmd, cwd=PREFIX, capture_output=True, text=True,
                           timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "`%s` in %s took over %d s" % (" ".join(cmd), PREFIX, NPM_TIMEOUT_S)
    if r.returncode:
        return "`%s` in %s exited %d: %s" % (" ".join(cmd), PREFIX, r.returncode,
                                             (r.stderr or r.stdout).strip()[-1500:])
    with open(stamp, "w") as f:
        f.write(want + "\n")
    return None


def env():
    """The server's environment: the installed packages on NODE_PATH."""
    return dict(os.environ, NODE_PATH=os.path.join(PREFIX, "node_modules"))


def cmd():
    return ["node", SERVER]


def versions():
    """(node's version, pg's installed version)."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        with open(os.path.join(PREFIX, "node_modules", "pg", "package.json")) as f:
            pg = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pg = None
    return node, pg


if __name__ == "__main__":
    why = install()
    print(why or "installed: node %s, pg %s in %s" % (versions() + (PREFIX,)))
    raise SystemExit(1 if why else 0)
