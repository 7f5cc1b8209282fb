"""Encrypted WeCom callbacks per second and latency, kpbot vs a bare server.

    python bench/callbacks.py [--seconds 5]

1. Throughput and p50/p99 latency at concurrency 1, 16 and 64 for
   a) a bare aiohttp + wechatpy server that checks, decrypts and answers,
   b) the same committing one SQLite row per message before it answers, and
   c) `kpbot serve` on SQLite (dispatcher off: this measures the callback path,
      which verifies, decrypts, parses and commits one row per message).
2. Report -> reply latency: `kpbot serve` with everything on, its WeCom API
   pointed at the fake WeCom server in this process; 50 reports per second
   from the demo's liaisons in turn, sent on schedule (open loop); time from a
   report's due moment to the fake receiving its answer's message/send.
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

from config.org import load_org  # noqa: E402
from tests.fakes.wecom_api import CallbackBuilder, FakeWeComAPI  # noqa: E402

CORP_ID, TOKEN, AES_KEY, SECRET, AGENT = "wwbench00000001", "benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "bench-secret", 1000002
USER = "wuliu_liaison"  # the throughput load's sender

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
    """Open loop: report i is due at t0 + i/rate whatever happened to the others
    (a slow answer must not slow the load down and hide itself), from every demo
    liaison in turn; latency counts from when the report was due."""
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP_ID, AGENT)
    users = demo_liaisons()
    total = int(rate * seconds)
    due = [i / rate for i in range(total)]
    user_of = [users[i % len(users)] for i in range(total)]
    async with FakeWeComAPI(corp_id=CORP_ID, secret=SECRET, agent_id=AGENT) as fake:
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            kp = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT,
                                  env=kpbot_env(data_dir, port, fake.url, dispatcher=True))
            url = f"http://127.0.0.1:{port}/wecom/callback"
            try:
                await wait_up(url, kp)
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(users))) as session:
                    start = time.perf_counter()
                    previous: dict[str, asyncio.Task] = {}
                    tasks = []
                    for i in range(total):
                        await asyncio.sleep(max(0.0, start + due[i] - time.perf_counter()))
                        text = f"{PROBLEMS[i % len(PROBLEMS)]}（第{i}处）"
                        # One user's reports go out in order (the k-th answer is to the k-th report).
                        task = asyncio.create_task(post_after(previous.get(user_of[i]), session, url, builder,
                                                              user_of[i], text))
                        previous[user_of[i]] = task
                        tasks.append(task)
                    await asyncio.gather(*tasks)
                    sent_in = time.perf_counter() - start
                    deadline = time.perf_counter() + 120
                    while len(replies(fake, users)) < total and time.perf_counter() < deadline:
                        await asyncio.sleep(0.05)
            finally:
                kp.terminate()
                kp.wait(10)
            answered = replies(fake, users)
            latencies = []
            for user in users:
                mine = [start + d for d, u in zip(due, user_of) if u == user]
                latencies += [call.received_at - at for call, at in zip(answered[user], mine)]
    count = sum(len(v) for v in answered.values())
    print(f"\nreport -> reply at {rate:.0f} reports/s for {seconds:.0f} s from {len(users)} liaisons "
          f"(all sent in {sent_in:.1f} s): {count}/{total} answered, p50 {pct(latencies, 50):.1f} ms, "
          f"p99 {pct(latencies, 99):.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")


PROBLEMS = [
    "项目临时用电迟迟接不上，变压器还没装，影响设备调试",
    "施工许可证办理卡在消防审验环节，已经等了两周",
    "用地指标还没批下来，二期厂房无法开工",
    "扬尘管控停工通知后，复工手续不清楚找谁办",
    "排污许可证申请材料被退回，不知道还缺什么",
]


def demo_liaisons() -> list[str]:
    org = load_org(ROOT / "config" / "org.toml")
    return [p.identities["wecom"] for p in org.people if p.has_role("liaison") and "wecom" in p.identities]


async def post_after(previous: asyncio.Task | None, session: aiohttp.ClientSession, url: str,
                     builder: CallbackBuilder, user: str, text: str) -> None:
    if previous is not None:
        await previous
    query, body = builder.post(builder.text(user, text))
    async with session.post(url, params=query, data=body) as response:
        assert response.status == 200, response.status


def replies(fake: FakeWeComAPI, users: list[str]) -> dict[str, list]:
    """Each user's successful message/send calls, in the order the fake got them."""
    wanted = set(users)
    answered: dict[str, list] = {user: [] for user in users}
    for call in fake.calls_to("/cgi-bin/message/send"):
        user = (call.json or {}).get("touser")
        if call.answer and call.answer.get("errcode") == 0 and user in wanted:
            answered[user].append(call)
    return answered


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
