"""The operator's health endpoints, served from the start of its event loop (before any
listing): ``/healthz`` answers while the loop runs (liveness), ``/readyz`` once every watch
has delivered its first listing (readiness), with what it still waits for otherwise."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


async def serve(port: int, not_ready: Callable[[], str | None]) -> web.AppRunner:
    """Serve both endpoints on ``port`` (all interfaces); the runner stops them."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        why = not_ready()
        return web.Response(text="ok") if why is None else web.Response(status=503, text=why)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
