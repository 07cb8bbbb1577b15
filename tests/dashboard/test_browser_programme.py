"""The programme pages end to end in headless Chromium against a served demo shop (SQLite and
PostgreSQL): ``/loyalty``, ``/promotions`` and ``/settings/shop`` pass axe-core with no
serious violation and the CSP blocks nothing; the marketer changes the earning scale and sees
the simulation change, creates a reward, generates a batch of coupons and downloads it (a real
download of the browser); a read-only user sees the pages and changes nothing. Screenshots
go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from tests.fixtures.browser import READER_PASSWORD, Pages

FITS = "return document.documentElement.scrollWidth <= window.innerWidth + 1"
# The elements wider than the screen (what to fix when a page overflows a phone).
WIDEST = """
const w = window.innerWidth + 1;
return [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > w)
  .filter(e => !(e.parentElement && e.parentElement.closest('.scroll')))
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' '
                        + Math.round(e.getBoundingClientRect().right) + ' in '
                        + e.parentElement.tagName + '.' + e.parentElement.className + ' '
                        + getComputedStyle(e.parentElement).overflowX);
"""


def _points(pages: Pages) -> int:
    return int("".join(c for c in pages.find("#simulated-points").text if c.isdigit()))


def _simulate(pages: Pages, amount: str) -> int:
    box = pages.find("#sim_amount")
    box.clear()
    box.send_keys(amount)
    pages.find("#simulate-button").click()
    pages.wait_for(lambda d: d.find_elements("css selector", "#simulated-points"))
    return _points(pages)


def test_the_programme_pages_in_a_real_browser(
    demo: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    pages = Pages(browser, demo["url"], demo["backend"])
    pages.sign_in(demo["email"], demo["password"])
    # the nav leads to the programme's pages: after the relationship pages, before Settings
    labels = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert labels.index("Analytics") < labels.index("Loyalty") < labels.index("Settings")
    assert labels.index("Promotions") == labels.index("Loyalty") + 1
    pages.visit("/loyalty", "loyalty")
    pages.visit("/promotions", "promotions")
    pages.visit("/settings/shop", "settings-shop")

    # change the earning scale and see the simulation change
    pages.open("/loyalty")
    before = _simulate(pages, "100")
    rules = pages.find("#simulation-rules").text
    assert "of the net amount" in rules
    pages.shot("simulation-before")
    ppu = pages.find("[id='settings.points_per_unit']")
    old = int(ppu.get_attribute("value"))
    ppu.clear()
    ppu.send_keys(str(old * 2))
    pages.find("#save-scale").click()
    pages.wait_for(lambda d: "Earning scale saved." in d.page_source)
    after = _simulate(pages, "100")
    base_after = int(pages.find("#simulation-rules li[data-rule=base]").text.split()[-2])
    assert base_after == 2 * (100 * old)  # 100 € at twice the points per euro
    assert after > before
    pages.shot("simulation-after")
    pages.accessible("simulation-after")

    # a scale that does not validate: the error by its field, nothing saved
    ppu = pages.find("[id='settings.points_per_unit']")
    ppu.clear()
    ppu.send_keys("-5")
    pages.find("#save-scale").click()
    pages.wait_for(lambda d: d.find_elements(By.ID, "err-settings-points_per_unit"))
    assert "greater than or equal to 0" in pages.find("#err-settings-points_per_unit").text
    pages.shot("scale-error")
    pages.accessible("scale-error")

    # create a reward
    pages.open("/loyalty")
    pages.find("#reward-name").send_keys("Browser tote bag")
    pages.find("#reward-points").send_keys("350")
    pages.find("#reward-stock").send_keys("12")
    pages.find("#create-reward").click()
    pages.wait_for(lambda d: "Reward created." in d.page_source)
    row = next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#rewards tbody tr")
        if "Browser tote bag" in r.text
    )  # fmt: skip
    assert "350" in row.text and "12" in row.text
    pages.shot("reward-created")

    # generate a batch of coupons and download it
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    pages.open("/promotions")
    pages.find("#batch-count").send_keys("40")
    pages.find("#batch-value").send_keys("10")
    pages.find("#batch-name").send_keys("Browser flyer")
    pages.find("#generate-batch").click()
    pages.wait_for(lambda d: "40 codes generated." in d.page_source)
    pages.shot("batch-generated")
    link = pages.find("#batches tr.new a[download]")
    link.click()
    deadline = time.monotonic() + 20
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [p for p in tmp_path.glob("coupons-*.csv")]
        if files and not list(tmp_path.glob("*.crdownload")):
            break
        time.sleep(0.2)
    assert files, "the CSV was not downloaded"
    rows = list(csv.DictReader(files[0].open(encoding="utf-8")))
    assert len(rows) == 40 and len({r["code"] for r in rows}) == 40
    assert {r["name"] for r in rows} == {"Browser flyer"}

    pages.visit("/activity", "activity-programme")
    for action in ("loyalty.scale_changed", "reward.created", "coupon.batch_created"):
        assert action in browser.page_source

    # phone width: the new pages fit the screen
    browser.set_window_size(390, 844)
    for path in ("/loyalty", "/promotions", "/settings/shop"):
        pages.open(path)
        try:
            pages.wait_for(lambda d: d.execute_script(FITS), seconds=5)
        except Exception:
            pages.shot("phone-too-wide" + path.replace("/", "-"))
            width = browser.execute_script("return document.documentElement.scrollWidth")
            raise AssertionError((path, width, browser.execute_script(WIDEST))) from None
        pages.shot("phone" + path.replace("/", "-"))
    browser.set_window_size(1280, 900)
    pages.open("/settings")
    pages.find("#logout").click()
    pages.wait_for(lambda d: "/login" in d.current_url)

    # a read-only user sees the pages and can change nothing
    pages.sign_in("reader@demo.test", READER_PASSWORD)
    pages.visit("/loyalty", "read-only-loyalty")
    assert not browser.find_elements(By.CSS_SELECTOR, "#save-scale, #reward-form")
    shown = pages.find("[id='settings.points_per_unit']").get_attribute("value")
    pages.visit("/promotions", "read-only-promotions")
    assert not browser.find_elements(By.CSS_SELECTOR, "#coupon-form, #batch-form")
    token = pages.find("input[name=csrf_token]").get_attribute("value")
    for path, fields in (
        ("/loyalty/scale", {"settings.points_per_unit": "50"}),
        ("/loyalty/rewards", {"name": "x", "points_cost": "5", "kind": "custom"}),
        ("/promotions/batches", {"count": "5", "kind": "free_shipping"}),
        ("/settings/shop/regional", {"locale": "de_DE", "currency": "CHF", "timezone": "UTC"}),
    ):
        assert pages.post_from_page(path, {**fields, "csrf_token": token}) == 403, path
    pages.open("/loyalty")
    assert pages.find("[id='settings.points_per_unit']").get_attribute("value") == shown
    pages.no_csp_violation()
