"""One full ticket life on the /sim page, typed and clicked in headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (.ci/run installs it)"),
]

LIAISON = "示范物流园项目联络员"
CONTACT = "国网尧都区供电公司13710联系人"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def test_ticket_life_on_the_sim_page(bot, tmp_path):
    from playwright.async_api import async_playwright

    assert CHROMIUM, "CI must have chromium"
    base = str(bot.client.make_url("/sim"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            await page.goto(base)

            async def be(name: str):
                await page.locator(".person", has_text=name).first.click()
                await page.wait_for_function("document.getElementById('header').textContent.length > 0")

            async def type_(text: str):
                await page.fill("#text", text)
                await page.click("#send")

            async def last_bot_text() -> str:
                return await page.locator(".msg.bot").last.inner_text()

            await be(LIAISON)
            await type_("项目临时用电迟迟接不上，变压器还没装，影响设备调试")
            await page.wait_for_selector(".msg.bot")
            assert "YD-2026-0001" in await last_bot_text()

            await be(CONTACT)
            await page.wait_for_selector(".msg.bot button[data-key='签收 YD-2026-0001']")
            await page.click(".msg.bot button[data-key='签收 YD-2026-0001']")
            await page.wait_for_function("document.querySelectorAll('.msg.bot').length >= 2")
            await type_("办结 YD-2026-0001 变压器已安装，临时用电已接通")
            await page.wait_for_function("document.querySelectorAll('.msg.bot').length >= 3")

            await be(LIAISON)
            await page.wait_for_selector(".msg.bot button[data-key='满意 YD-2026-0001']")
            await page.click(".msg.bot button[data-key='满意 YD-2026-0001']")
            # The resolved card itself mentions 销号: wait for the confirmation.
            await page.wait_for_function(
                "[...document.querySelectorAll('.msg.bot')].some(m => m.textContent.includes('已销号。感谢'))")
            shot = tmp_path / "sim.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("KPBOT_SCREENSHOT_DIR")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "sim.png")
        finally:
            await browser.close()

    async with bot.runtime.sessionmaker() as session:
        from models.repo import ticket_by_number

        ticket = await ticket_by_number(session, "YD-2026-0001")
        assert ticket.status == "closed"
