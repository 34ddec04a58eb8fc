#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""The uvicorn server of the FastAPI test apps: it says on stdout when it
listens ("listening PORT"), which the tests wait for, with the port it got
(--port 0 picks a free one)."""

import uvicorn


class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print("listening %d" % port, flush=True)
