"""Encrypted WeCom callbacks per second and latency, kpbot vs a bare server.

    python bench/callbacks.py [--seconds 5]

1. Throughput and p50/p99 latency at concurrency 1, 16 and 64 for
   a) a bare aiohttp + wechatpy server that checks, decrypts and answers,
   b) the same committing one SQLite row per message before it answers, and
   c) `kpbot serve` on SQLite (dispatcher off: this measures the callback path,
      which verifies, decrypts, parses and commits one row per message).
2. Report -> reply latency: `kpbot serve` with everything on, its WeCom API
   pointed at the fake WeCom server in this process; 50 reports per second;
   time from sending the callback to the fake receiving message/send.
Each server runs in its own process; the load comes from this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.wecom_api import CallbackBuilder, FakeWeComAPI  # noqa: E402

CORP_ID, TOKEN, AES_KEY, SECRET, AGENT = "wwbench00000001", "benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "bench-secret", 1000002
USER = "wuliu_liaison"

BARE_SERVER = f"""
import sys
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto
crypto = WeChatCrypto({TOKEN!r}, {AES_KEY!r}, {CORP_ID!r})
async def callback(request):
    q = request.query
    body = await request.read()
    crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
    return web.Response(text="")
app = web.Application()
app.router.add_post("/wecom/callback", callback)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# The same, committing one row per message before answering, the plain way:
# sqlite3 on the event loop, one transaction per message, with the durability
# kpbot's inbox has (WAL, synchronous=FULL).
BARE_ROW_SERVER = f"""
import sqlite3, sys
from aiohttp import web
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
crypto = WeChatCrypto({TOKEN!r}, {AES_KEY!r}, {CORP_ID!r})
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS inbound (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, sender TEXT, xml TEXT)")
async def callback(request):
    q = request.query
    body = await request.read()
    xml = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
    message = parse_message(xml)
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR IGNORE INTO inbound (message_id, sender, xml) VALUES (?, ?, ?)",
                   (str(message.id), message.source, xml))
    return web.Response(text="")
app = web.Application()
app.router.add_post("/wecom/callback", callback)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kpbot_env(data_dir: str, port: int, api_base: str, dispatcher: bool) -> dict:
    env = dict(os.environ)
    env.update({
        "KPBOT_DATA_DIR": data_dir, "KPBOT_PORT": str(port), "KPBOT_WECOM_CORP_ID": CORP_ID,
        "KPBOT_WECOM_AGENT_ID": str(AGENT), "KPBOT_WECOM_SECRET": SECRET, "KPBOT_WECOM_TOKEN": TOKEN,
        "KPBOT_WECOM_AES_KEY": AES_KEY, "KPBOT_WECOM_API_BASE": api_base, "KPBOT_SIMULATOR": "off",
        "KPBOT_DISPATCHER_ENABLED": "true" if dispatcher else "false", "KPBOT_SCHEDULER_ENABLED": "false",
        "KPBOT_LOG_LEVEL": "WARNING",
    })
    env.pop("KPBOT_DATABASE_URL", None)
    return env


async def wait_up(url: str, process: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("server did not start")


async def load(url: str, builder: CallbackBuilder, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            while time.perf_counter() < deadline:
                query, body = builder.post(builder.text(USER, "帮助"))
                start = time.perf_counter()
                async with session.post(url, params=query, data=body) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def throughput(seconds: float) -> None:
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP_ID, AGENT)
    results = {}
    with tempfile.TemporaryDirectory() as data_dir:
        ports = {name: free_port() for name in SERVERS}
        processes = {
            "bare": subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(ports["bare"])]),
            "bare+row": subprocess.Popen([sys.executable, "-c", BARE_ROW_SERVER, str(ports["bare+row"]),
                                          str(Path(data_dir) / "bare.db")]),
            "kpbot": subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT,
                                      env=kpbot_env(data_dir, ports["kpbot"], "http://127.0.0.1:9", dispatcher=False)),
        }
        try:
            for name in SERVERS:
                url = f"http://127.0.0.1:{ports[name]}/wecom/callback"
                await wait_up(url, processes[name])
                await load(url, builder, 4, 1.0)  # warm up
                for concurrency in (1, 16, 64):
                    count, latencies = await load(url, builder, concurrency, seconds)
                    results[(name, concurrency)] = (count / seconds, pct(latencies, 50), pct(latencies, 99))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)
    print("WeCom encrypted callbacks on SQLite: bare = decrypt and answer; bare+row = also commit one row per\n"
          "message (sqlite3, synchronous=FULL); kpbot = verify, decrypt, parse, commit (group commit, FULL)")
    print(f"{'server':<10}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs bare':>10}{'vs +row':>10}")
    for (name, concurrency), (rate, p50, p99) in results.items():
        ratios = [rate / results[(base, concurrency)][0] for base in ("bare", "bare+row")]
        print(f"{name:<10}{concurrency:>6}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}{ratios[0]:>10.2f}{ratios[1]:>10.2f}")


SERVERS = ("bare", "bare+row", "kpbot")


async def report_to_reply(rate: float, seconds: float) -> None:
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP_ID, AGENT)
    async with FakeWeComAPI(corp_id=CORP_ID, secret=SECRET, agent_id=AGENT) as fake:
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            kp = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT,
                                  env=kpbot_env(data_dir, port, fake.url, dispatcher=True))
            url = f"http://127.0.0.1:{port}/wecom/callback"
            try:
                await wait_up(url, kp)
                sent_at: list[float] = []
                total = int(rate * seconds)
                async with aiohttp.ClientSession() as session:
                    for i in range(total):
                        text = f"第{i}处：项目临时用电迟迟接不上，变压器还没装"
                        query, body = builder.post(builder.text(USER, text))
                        sent_at.append(time.perf_counter())
                        async with session.post(url, params=query, data=body) as response:
                            assert response.status == 200
                        await asyncio.sleep(max(0.0, sent_at[-1] + 1 / rate - time.perf_counter()))
                    deadline = time.perf_counter() + 60
                    while len(replies_to_user(fake)) < total and time.perf_counter() < deadline:
                        await asyncio.sleep(0.05)
            finally:
                kp.terminate()
                kp.wait(10)
            # One sender's messages are processed and answered in order: the k-th
            # answer to the liaison is the answer to the k-th report.
            latencies = [call.received_at - start for call, start in zip(replies_to_user(fake), sent_at)]
    print(f"\nreport -> reply at {rate:.0f} reports/s for {seconds:.0f} s: {len(latencies)}/{total} answered, "
          f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")


def replies_to_user(fake: FakeWeComAPI) -> list:
    return [c for c in fake.calls_to("/cgi-bin/message/send")
            if c.answer and c.answer.get("errcode") == 0 and (c.json or {}).get("touser") == USER]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=50.0, help="reports per second for report -> reply")
    parser.add_argument("--only", choices=["throughput", "latency"])
    args = parser.parse_args()
    if args.only != "latency":
        asyncio.run(throughput(args.seconds))
    if args.only != "throughput":
        asyncio.run(report_to_reply(args.rate, args.seconds * 2))


if __name__ == "__main__":
    main()
