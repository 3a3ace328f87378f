"""The FastAPI app: routes, API-key check, error bodies, /health and /metrics, and the engine loop's lifetime."""
from __future__ import annotations

import contextlib
import logging
import secrets

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from zooinfer.errors import ZooinferError

from . import native_routes, openai_routes
from .engine_loop import EngineLoop, ServerBusy
from .metrics import ServerMetrics
from .serving import APIError, ClientGone, ServerState

log = logging.getLogger("zooinfer.server")


def create_app(engine, model_name: str, api_key: str | None = None, max_waiting: int | None = None) -> FastAPI:
    """An app serving `engine` (an LLMEngine) under `model_name`. The engine thread runs while the app's
    lifespan does (`with TestClient(app)`, or uvicorn)."""
    engine_loop = EngineLoop(engine, ServerMetrics(), max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        engine_loop.start()
        try:
            yield
        finally:
            engine_loop.stop()

    def check_api_key(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if api_key is not None and not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise APIError(401, "a missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")

    app = FastAPI(title="zooinfer", lifespan=lifespan)
    app.state.zooinfer = ServerState(engine_loop, model_name, api_key)
    # /health and /metrics stay open for load balancers and scrapers
    app.include_router(openai_routes.router, dependencies=[Depends(check_api_key)])
    app.include_router(native_routes.router, dependencies=[Depends(check_api_key)])
    _add_error_handlers(app)

    @app.get("/health")
    async def health():
        return Response(status_code=200 if engine_loop.alive else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(engine_loop.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request, exc: APIError):
        return _error(exc)

    @app.exception_handler(ZooinferError)
    async def bad_input(request, exc: ZooinferError):
        return _error(APIError(400, str(exc)))

    @app.exception_handler(ServerBusy)
    async def busy(request, exc: ServerBusy):
        return _error(APIError(503, str(exc), kind="server_busy", code="too_many_waiting",
                               headers={"Retry-After": "1"}))

    @app.exception_handler(ClientGone)
    async def client_gone(request, exc: ClientGone):
        return Response(status_code=499)  # nobody reads it: the client has closed the connection

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return _error(APIError(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', '')}"))
        if first["loc"] == ("body",) and isinstance(first.get("input"), (bytes, str)):
            return _error(APIError(400, "the body must be a JSON object sent as Content-Type: application/json"))
        loc = [str(part) for part in first["loc"] if part != "body"]
        return _error(APIError(400, f"{'.'.join(loc) or 'body'}: {first['msg']}", param=loc[0] if loc else None))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):
        log.exception("request failed")
        return _error(APIError(500, f"internal error: {exc}", kind="server_error"))
