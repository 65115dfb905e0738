"""The HTTP API of `banklake serve` (FastAPI; the OpenAPI page is /docs).

    POST /v1/transactions          one transaction (the raw contract's fields) -> its decision
    POST /v1/transactions:batch    up to MAX_BATCH, in order, all or nothing
    POST /v1/fraud-reports         a confirmed fraud (chargeback, MED claim, ...)
    GET  /v1/health                the process answers
    GET  /v1/ready                 champion loaded, state warmed, how far behind the lake
    GET  /v1/decisions/recent      the latest decisions (the dashboard's live page)
    GET  /metrics                  Prometheus text

Refusals are JSON {"detail": [{"loc": [...], "msg": ..., "type": ...}]} with status 422 (the
field is in `loc`, the processed layer's rejection reason in `type`), 409 for a transaction the
lake already holds, 413 for an oversized body or batch, 503 while not ready.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_jobs.serve.asgi import MAX_BODY_BYTES, declared_length, is_hot, read_body
from python_jobs.serve.contract import FraudReportPayload, TransactionPayload
from python_jobs.serve.metrics import Metrics
from python_jobs.serve.service import (
    MAX_BATCH,
    Refused,
    ScoringRequest,
    ScoringService,
    Unavailable,
    Written,
)

# Requests that arrive while a decision is being made are decided together next, up to this
# many: one model call and one fsync for all of them, each still answered on its own.
MAX_COALESCED = 64


class Decider:
    """Every decision is made on one worker thread, in arrival order, so the event loop keeps
    reading requests meanwhile; what queued up during one decision is decided in the next.
    A decided batch is answered from a second thread once the log has synced it, while the
    first thread decides the next batch (group commit: the fsync no longer holds decisions
    up, and one fsync covers every batch written by its start)."""

    def __init__(self, service: ScoringService) -> None:
        self.service = service
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="decide")
        self.syncing = ThreadPoolExecutor(1, thread_name_prefix="sync")  # in batch order
        self.queue: asyncio.Queue[tuple[ScoringRequest, asyncio.Future[Any]]] = asyncio.Queue()
        self.coalesced = 0  # requests decided together with an earlier one
        self._answering: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            while len(waiting) < MAX_COALESCED and not self.queue.empty():
                waiting.append(self.queue.get_nowait())
            self.coalesced += len(waiting) - 1
            requests = [request for request, _ in waiting]
            futures = [future for _, future in waiting]
            try:
                written = await loop.run_in_executor(
                    self.executor, partial(self.service.decide_written, requests, atomic=False)
                )
            except Exception as error:
                _fail(futures, error)
                continue
            task = asyncio.create_task(self._answer(futures, written))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _answer(self, futures: list[asyncio.Future[Any]], written: Written) -> None:
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.syncing, self.service.finish, written
            )
        except Exception as error:  # every waiting request gets the error
            _fail(futures, error)
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
        self.syncing.shutdown(wait=True)

    async def decide(
        self, payload: dict[str, Any], include_features: bool, received: float | None = None
    ) -> Any:
        """`received`: when the request arrived (time.monotonic), if before now. The
        payload is read here, before its turn (a refusal is answered at once: it applies
        nothing, so it needs no place in the order)."""
        started = time.monotonic() if received is None else received
        try:
            prepared = self.service.prepare(payload)
        except Refused as refused:
            return refused
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request = ScoringRequest(payload, include_features, started, prepared)
        self.queue.put_nowait((request, future))
        return await future

    async def submit(self, payloads: list[dict[str, Any]], include_features: bool) -> Any:
        """A client's batch: all or nothing, on the same thread as every other decision."""
        return await asyncio.get_running_loop().run_in_executor(
            self.executor,
            partial(self.service.submit, payloads, include_features=include_features),
        )


def _fail(futures: list[asyncio.Future[Any]], error: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


class Reason(BaseModel):
    feature: str
    reason_code: str | None
    description: str | None
    contribution: float = Field(description="Score points this feature adds to the score.")


class Decision(BaseModel):
    transaction_id: str
    score: float
    decision: str = Field(description="approve, review (alert threshold) or block")
    reasons: list[Reason]
    reasons_exact: bool = Field(
        description="True: TreeSHAP, the batch job's reasons (review, block); false: path "
        "attributions (approve)."
    )
    model_version: str
    threshold: float
    account_id: str
    counterparty_key: str | None = Field(description="Curated key: hashed when personal.")
    amount_brl: float
    transaction_type: str
    channel: str
    event_ts: str
    latency_ms: float = Field(description="Server-side time to decide.")
    features: dict[str, Any] | None = Field(
        default=None, description="ml_features' columns (with ?include=features)."
    )


class Batch(BaseModel):
    transactions: list[TransactionPayload] = Field(max_length=MAX_BATCH)


class BatchDecisions(BaseModel):
    decisions: list[Decision]


class ReportAnswer(BaseModel):
    report_id: str
    transaction_id: str
    reported_at: str
    scenario: str
    transaction_known: bool


def _json(answer: BaseModel) -> Response:
    """The answer as FastAPI's response_model would send it (None fields left out), serialized
    by pydantic in one call: FastAPI's own path (validate, jsonable_encoder, json.dumps) cost
    more CPU per decision than deciding it."""
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")


class Guard:
    """ASGI middleware: refuses a body over MAX_BODY_BYTES (413, before it is read) and counts
    requests by path and status. Plain ASGI: FastAPI's @app.middleware("http") wraps every
    request in extra tasks and streams and doubled the CPU the HTTP layer costs a request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None and length > MAX_BODY_BYTES:
            self.metrics.count(
                "banklake_refused_total", "Requests refused, by reason.", reason="body_too_large"
            )
            refusal = JSONResponse(
                status_code=413,
                content={
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": f"body over {MAX_BODY_BYTES} bytes",
                            "type": "body_too_large",
                        }
                    ]
                },
            )
            await refusal(scope, receive, send)
            return
        status = 500  # if the app fails before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            count_request(self.metrics, scope["path"], status)


def count_request(metrics: Metrics, path: str, status: int) -> None:
    metrics.count(
        "banklake_requests_total",
        "HTTP requests, by path and status.",
        path=path,
        status=str(status),
    )


class FastDecisions:
    """ASGI middleware: the hot path, `POST /v1/transactions` with a valid JSON body and no
    query, decided without FastAPI's per-request machinery (dependency solving, the request
    object, the route's response model), which cost the event loop more CPU per decision than
    the rest of the request. Same validation (the route's pydantic model, from the bytes),
    same decision, same answer. Anything else (a query, another content type, a body that
    does not validate) goes to the routes unchanged, so refusals, their 422 details and the
    dead letter have one implementation."""

    def __init__(self, app: ASGIApp, deciding: Callable[[], Decider]) -> None:
        self.app = app
        self.deciding = deciding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_hot(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away before sending it all: nothing to decide
            return
        response = await decide_hot(body, self.deciding)
        if response is None:
            await self.app(scope, _replaying(body), send)
            return
        await response(scope, receive, send)


async def decide_hot(
    body: bytes, deciding: Callable[[], Decider], received: float | None = None
) -> Response | None:
    """The hot path's answer to a body; None when the body does not validate (the routes
    refuse it, with their 422 details and the dead letter)."""
    try:
        payload = TransactionPayload.model_validate_json(body)
    except ValidationError:
        return None
    try:
        answer = await deciding().decide(payload.model_dump(), False, received)
    except Unavailable as error:
        return _unavailable(error)
    if isinstance(answer, Refused):
        return _refusal(answer)
    return _json(Decision.model_validate(answer))


def _replaying(body: bytes) -> Receive:
    """A receive that hands the routes the body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _unavailable(error: Unavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(error)})


def _refusal(error: Refused) -> JSONResponse:
    index = error.index
    loc: list[Any] = ["body"] + ([] if index is None else ["transactions", index]) + [error.field]
    return JSONResponse(
        status_code=error.status,
        content={"detail": [{"loc": loc, "msg": error.detail, "type": error.reason}]},
    )


class ServingApi(FastAPI):
    """FastAPI with the guard and the hot path in front of it: every request passes them
    before FastAPI's own middleware (its error page, body limit and telemetry layers cost
    the hot path more than they gave it; the guard limits bodies, and an exception on the
    hot path gets uvicorn's 500)."""

    front: ASGIApp | None = None
    deciding: Callable[[], Decider] | None = None  # the hot path's decider, once started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await super().__call__(scope, receive, send)
        else:
            await self.front(scope, receive, send)

    async def behind(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself, for what the front hands on."""
        await super().__call__(scope, receive, send)


def create_app(service: ScoringService, *, start: bool = True) -> ServingApi:
    """The API over a service; `start` warms it when the app starts (uvicorn's lifespan)."""

    decider: Decider | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal decider
        if start:
            service.start()
        decider = Decider(service)
        running = asyncio.create_task(decider.run())
        try:
            yield
        finally:
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
            decider.shutdown()
            if start:
                service.stop()

    def deciding() -> Decider:
        if decider is None:
            raise Unavailable("starting")
        return decider

    app = ServingApi(
        title="banklake real-time scoring",
        version="1",
        description="Fraud decisions while the payment is in flight (docs/serving.md).",
        lifespan=lifespan,
    )

    # the guard first: it counts and size-checks the hot path's requests too
    app.front = Guard(FastDecisions(app.behind, deciding=deciding), metrics=service.metrics)
    app.deciding = deciding

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        body = await request.body()
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", errors="replace")
        first = error.errors()[0] if error.errors() else {}
        service.wal.dead_letter(
            {
                "kind": request.url.path,
                "status": 422,
                "field": ".".join(str(x) for x in first.get("loc", [])),
                "reason": first.get("type"),
                "detail": first.get("msg"),
                "payload": payload,
            }
        )
        service.metrics.count(
            "banklake_refused_total", "Requests refused, by reason.", reason="invalid_body"
        )
        detail = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg"), "type": e.get("type")}
            for e in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, error: Unavailable) -> JSONResponse:
        return _unavailable(error)

    @app.post("/v1/transactions", response_model=Decision, response_model_exclude_none=True)
    async def transaction(
        body: TransactionPayload,
        include: str | None = Query(default=None, description="features: add the feature vector"),
    ) -> Any:
        answer = await deciding().decide(body.model_dump(), include == "features")
        if isinstance(answer, Refused):
            return _refusal(answer)
        return _json(Decision.model_validate(answer))

    @app.post(
        "/v1/transactions:batch", response_model=BatchDecisions, response_model_exclude_none=True
    )
    async def batch(
        body: Batch,
        include: str | None = Query(default=None, description="features: add the feature vectors"),
    ) -> Any:
        payloads = [t.model_dump() for t in body.transactions]
        try:
            answers = await deciding().submit(payloads, include == "features")
        except Refused as error:
            return _refusal(error)
        return _json(BatchDecisions.model_validate({"decisions": answers}))

    @app.post("/v1/fraud-reports", response_model=ReportAnswer)
    async def fraud_report(body: FraudReportPayload) -> Any:
        try:
            return service.report(body.model_dump())
        except Refused as error:
            return _refusal(error)

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/ready")
    async def ready() -> JSONResponse:
        body = service.readiness()
        return JSONResponse(status_code=200 if body["ready"] else 503, content=body)

    @app.get("/v1/decisions/recent")
    async def recent() -> list[dict[str, Any]]:
        """The latest decisions, newest first (ids, amounts, scores, reasons; no keys)."""
        return list(reversed(service.recent))

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return service.metrics.render()

    return app
