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

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from python_jobs.serve.contract import FraudReportPayload, TransactionPayload
from python_jobs.serve.service import MAX_BATCH, Refused, ScoringService, Unavailable

MAX_BODY_BYTES = 1_000_000  # a batch of MAX_BATCH transactions is far below this


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


def _refusal(error: Refused) -> JSONResponse:
    index = error.index
    loc: list[Any] = ["body"] + ([] if index is None else ["transactions", index]) + [error.field]
    return JSONResponse(
        status_code=error.status,
        content={"detail": [{"loc": loc, "msg": error.detail, "type": error.reason}]},
    )


def create_app(service: ScoringService, *, start: bool = True) -> FastAPI:
    """The API over a service; `start` warms it when the app starts (uvicorn's lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start:
            service.start()
        try:
            yield
        finally:
            if start:
                service.stop()

    app = FastAPI(
        title="banklake real-time scoring",
        version="1",
        description="Fraud decisions while the payment is in flight (docs/serving.md).",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_BODY_BYTES:
            service.metrics.count(
                "banklake_refused_total", "Requests refused, by reason.", reason="body_too_large"
            )
            return JSONResponse(
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
        response = await call_next(request)
        service.metrics.count(
            "banklake_requests_total",
            "HTTP requests, by path and status.",
            path=request.url.path,
            status=str(response.status_code),
        )
        return response

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
        return JSONResponse(status_code=503, content={"detail": str(error)})

    @app.post("/v1/transactions", response_model=Decision, response_model_exclude_none=True)
    async def transaction(
        body: TransactionPayload,
        include: str | None = Query(default=None, description="features: add the feature vector"),
    ) -> Any:
        try:
            (answer,) = service.submit([body.model_dump()], include_features=include == "features")
        except Refused as error:
            return _refusal(error)
        return answer

    @app.post(
        "/v1/transactions:batch", response_model=BatchDecisions, response_model_exclude_none=True
    )
    async def batch(
        body: Batch,
        include: str | None = Query(default=None, description="features: add the feature vectors"),
    ) -> Any:
        payloads = [t.model_dump() for t in body.transactions]
        try:
            answers = service.submit(payloads, include_features=include == "features")
        except Refused as error:
            return _refusal(error)
        return {"decisions": answers}

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
