"""Baseline (a): the choice-portal design in FastAPI + uvicorn.

Every viewer opens a WebSocket; each connection runs its own loop that sends a `sync` message
once a second (remaining time computed at that moment), and a timeout change is sent at once
to every socket of that choice (the ConnectionManager pattern from FastAPI's WebSocket docs).
State is in memory: this is the stack's cost of holding viewers, not a full portal.
"""

import asyncio
import secrets
import time
from datetime import datetime, timezone

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()


class Choice:
    def __init__(self, seconds: float):
        self.id = secrets.token_urlsafe(16)
        self.timeout_seconds = seconds
        self.deadline_ms = now_ms() + int(seconds * 1000)


choices: dict[str, Choice] = {}
sockets: dict[str, set[WebSocket]] = {}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def sync(choice: Choice) -> dict:
    remaining = max(0, choice.deadline_ms - now_ms())
    return {
        "type": "sync",
        "remaining_seconds": remaining / 1000,
        "deadline": iso(choice.deadline_ms),
        "timeout_seconds": choice.timeout_seconds,
        "paused": False,
    }


class CreateBody(BaseModel):
    timeout_seconds: float = 300


class TimeoutBody(BaseModel):
    seconds: float


@app.post("/choices", status_code=201)
async def create(body: CreateBody):
    choice = Choice(body.timeout_seconds)
    choices[choice.id] = choice
    return {"id": choice.id, "deadline": iso(choice.deadline_ms)}


@app.post("/choices/{choice_id}/timeout")
async def set_timeout(choice_id: str, body: TimeoutBody):
    choice = choices[choice_id]
    choice.deadline_ms = now_ms() + int(body.seconds * 1000)
    message = sync(choice)
    for ws in list(sockets.get(choice_id, ())):
        try:
            await ws.send_json(message)
        except Exception:
            sockets[choice_id].discard(ws)
    return {"id": choice.id, "deadline": iso(choice.deadline_ms)}


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.websocket("/ws/{choice_id}")
async def socket(ws: WebSocket, choice_id: str):
    choice = choices.get(choice_id)
    if choice is None:
        await ws.close(code=4404)
        return
    await ws.accept()
    sockets.setdefault(choice_id, set()).add(ws)
    try:
        await ws.send_json({"type": "status", "status": "connected"})
        # The per-connection loop: each socket ticks at its own moment of the second.
        while True:
            await ws.send_json(sync(choice))
            await asyncio.sleep(1)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        sockets.get(choice_id, set()).discard(ws)
