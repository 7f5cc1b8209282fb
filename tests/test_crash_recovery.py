"""A crash after the platform was answered loses nothing: kill -9 the server
between storing and processing, start it again, and the message is processed
exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LIAISON = "p_wuliu_liaison"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(database, data_dir: Path, port: int, *, dispatcher: bool) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "KPBOT_DATA_DIR": str(data_dir), "KPBOT_DATABASE_URL": database.url,
        "KPBOT_DATABASE_SCHEMA": database.schema or "", "KPBOT_PORT": str(port),
        "KPBOT_DISPATCHER_ENABLED": "true" if dispatcher else "false",
        "KPBOT_SCHEDULER_ENABLED": "false", "KPBOT_DISPATCH_POLL_SECONDS": "0.1",
        "KPBOT_OUTBOX_POLL_SECONDS": "0.1",
    })
    return subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_healthy(session: aiohttp.ClientSession, base: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-3000:]}")
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


async def inbox(session, base, user) -> list[dict]:
    async with session.get(f"{base}/sim/api/inbox", params={"user": user}) as response:
        return await response.json()


@pytest.mark.slow
async def test_kill_after_answer_then_restart_processes_once(database, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        first = start_server(database, tmp_path, port, dispatcher=False)
        try:
            await wait_healthy(session, base, first)
            body = {"user": LIAISON, "text": "项目临时用电迟迟接不上，变压器还没装", "id": "crash-1"}
            async with session.post(f"{base}/sim/api/messages", json=body) as response:
                assert response.status == 200
                assert (await response.json())["ok"] is True
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)

        second = start_server(database, tmp_path, port, dispatcher=True)
        try:
            await wait_healthy(session, base, second)
            # The platform retries the same message after the restart: still one ticket.
            async with session.post(f"{base}/sim/api/messages", json=body) as response:
                assert (await response.json())["duplicate"] is True
            items = []
            for _ in range(100):
                items = await inbox(session, base, LIAISON)
                if items:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything doubled would arrive by now
            items = await inbox(session, base, LIAISON)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(10)
    assert len(items) == 1, items
    assert "问题已受理" in (items[0]["reply"]["title"] or "") and "YD-2026-0001" in items[0]["reply"]["text"]
