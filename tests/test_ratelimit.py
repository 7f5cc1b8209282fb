"""bot/channels/ratelimit.py: the per-key sliding window both group-robot clients use."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.channels import dingtalk_api, wecom_api
from bot.channels.ratelimit import SlidingWindowLimiter


class FakeTime:
    """A monotonic clock that moves only when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.t = 500.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


def limiter(ft: FakeTime, limit: int = 3, window: float = 10.0, **kw) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(limit, window, monotonic=ft.monotonic, sleep=ft.sleep, **kw)


async def test_a_burst_up_to_the_limit_then_a_wait_for_the_oldest_to_leave(ft):
    rl = limiter(ft, max_wait=10.0)
    assert [await rl.acquire("k") for _ in range(3)] == [None, None, None]
    assert ft.sleeps == [] and rl.in_window("k") == 3
    ft.t += 4.0
    assert await rl.acquire("k") is None  # waited until the three left the window
    assert ft.sleeps == [pytest.approx(6.0)] and ft.t == pytest.approx(510.0)
    assert rl.in_window("k") == 1
    ft.t += 2.0
    assert await rl.acquire("k") is None and await rl.acquire("k") is None
    assert await rl.acquire("k") is None  # 510's slot frees at 520
    assert ft.sleeps == [pytest.approx(6.0), pytest.approx(8.0)]
    assert rl.in_window("k") == 3  # 512, 512, 520


async def test_a_wait_longer_than_max_wait_takes_nothing_and_says_how_long(ft):
    rl = limiter(ft, max_wait=5.0)
    for _ in range(3):
        await rl.acquire("k")
        ft.t += 1.0
    assert await rl.acquire("k") == pytest.approx(7.0)  # the first slot frees at 510, now is 503
    assert rl.in_window("k") == 3 and ft.sleeps == []
    ft.t += 2.0  # 505: 5 s to go, within max_wait
    assert await rl.acquire("k") is None
    assert ft.sleeps == [pytest.approx(5.0)]


async def test_max_wait_per_call_overrides_the_default(ft):
    rl = limiter(ft, limit=1, max_wait=100.0)
    assert await rl.acquire("k", 0) is None  # a free slot needs no wait
    assert await rl.acquire("k", 0) == pytest.approx(10.0)
    assert await rl.acquire("k", 9.9) == pytest.approx(10.0)
    assert await rl.acquire("k", 10.0) is None
    assert ft.sleeps == [pytest.approx(10.0)]
    assert await rl.acquire("k") is None  # the limiter's own 100 s
    assert ft.sleeps == [pytest.approx(10.0)] * 2


async def test_the_window_slides_and_its_edge_is_free():
    t = [0.0]
    rl = SlidingWindowLimiter(2, 10.0, max_wait=0.0, monotonic=lambda: t[0])
    assert await rl.acquire("k") is None
    t[0] = 4.0
    assert await rl.acquire("k") is None
    t[0] = 6.0
    assert await rl.acquire("k") == pytest.approx(4.0)
    t[0] = 10.0  # the slot of 0.0 is exactly one window old: free
    assert await rl.acquire("k") is None
    assert await rl.acquire("k") == pytest.approx(4.0)  # 4.0's slot leaves at 14.0
    t[0] = 14.0
    assert await rl.acquire("k") is None


async def test_keys_have_their_own_windows(ft):
    rl = limiter(ft, limit=1, max_wait=0.0)
    assert await rl.acquire("robot-a") is None
    assert await rl.acquire("robot-a") == pytest.approx(10.0)
    assert await rl.acquire("robot-b") is None
    assert rl.in_window("robot-a") == rl.in_window("robot-b") == 1
    assert rl.in_window("robot-c") == 0


async def test_concurrent_callers_never_overbook_and_are_served_in_order(ft):
    delays: list[float] = []

    async def sleep(seconds: float) -> None:  # time stands still while all of them reserve
        delays.append(seconds)
        await asyncio.sleep(0)

    rl = SlidingWindowLimiter(20, 60.0, max_wait=1000.0, monotonic=ft.monotonic, sleep=sleep)
    assert await asyncio.gather(*(rl.acquire("k") for _ in range(50))) == [None] * 50
    # 20 now, 20 a minute later, 10 two minutes later, in the order they asked.
    assert delays == [60.0] * 20 + [120.0] * 10
    moments = [0.0] * 20 + delays
    for start in moments:
        assert sum(1 for m in moments if start <= m < start + 60.0) <= 20

    rl = SlidingWindowLimiter(20, 60.0, max_wait=90.0, monotonic=ft.monotonic, sleep=sleep)
    outcomes = await asyncio.gather(*(rl.acquire("k") for _ in range(50)))
    assert outcomes[:40] == [None] * 40
    assert outcomes[40:] == [pytest.approx(120.0)] * 10
    assert rl.in_window("k") == 40


async def test_a_waiting_caller_holds_up_neither_other_keys_nor_later_free_slots(ft):
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await release.wait()

    rl = SlidingWindowLimiter(1, 60.0, max_wait=60.0, monotonic=ft.monotonic, sleep=sleep)
    assert await rl.acquire("a") is None
    waiting = asyncio.create_task(rl.acquire("a"))  # sleeps until released
    await asyncio.sleep(0)
    assert not waiting.done()
    assert await asyncio.wait_for(rl.acquire("b"), 1) is None  # another key goes at once
    assert await asyncio.wait_for(rl.acquire("a"), 1) == pytest.approx(120.0)  # a refusal is not held up either
    release.set()
    assert await waiting is None


async def test_a_cancelled_waiter_never_lets_the_window_overbook(ft):
    started = asyncio.Event()

    async def sleep(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    rl = SlidingWindowLimiter(1, 60.0, max_wait=100.0, monotonic=ft.monotonic, sleep=sleep)
    assert await rl.acquire("k") is None
    waiter = asyncio.create_task(rl.acquire("k"))
    await started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Its reserved slot (one minute from now) stays taken: the next caller waits two.
    assert await rl.acquire("k", 0) == pytest.approx(120.0)


async def test_real_clock_and_sleep_by_default():
    rl = SlidingWindowLimiter(1, 0.01, max_wait=1.0)
    assert await rl.acquire("k") is None
    assert await rl.acquire("k") is None  # waited a moment with asyncio.sleep
    assert rl.in_window("k") == 1


@pytest.mark.parametrize("args", [{"limit": 0}, {"window": 0.0}, {"max_wait": -1.0}])
def test_bad_parameters(args):
    with pytest.raises(ValueError):
        SlidingWindowLimiter(**args)


def test_both_clients_use_it_with_20_a_minute():
    assert wecom_api.SlidingWindowLimiter is SlidingWindowLimiter
    assert dingtalk_api.SlidingWindowLimiter is SlidingWindowLimiter
    wecom = wecom_api.WeComClient(corp_id="ww", secret="s", agent_id=1, session=object())  # type: ignore[arg-type]
    dingtalk = dingtalk_api.DingTalkClient("key", "secret", "robot", "http://api", "http://oapi", object(),  # type: ignore[arg-type]
                                           lambda: datetime.now(UTC))
    for client in (wecom, dingtalk):
        assert isinstance(client.webhook_limiter, SlidingWindowLimiter)
        assert (client.webhook_limiter.limit, client.webhook_limiter.window) == (20, 60.0)
