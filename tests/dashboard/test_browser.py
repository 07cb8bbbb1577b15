"""End to end in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium through /usr/bin/chromedriver: no browser download) against a served demo shop:
sign in, every page, search and open a customer, adjust points, switch language, sign out;
a read-only user changes nothing; a POST without CSRF token is refused; axe-core finds no
serious or critical violation on any page; the Content-Security-Policy blocks nothing the
pages need. Screenshots go to ``test-artifacts/dashboard/`` (gitignored)."""

from __future__ import annotations

import re
from typing import Any

from tests.fixtures.browser import READER_PASSWORD, Pages


def test_the_marketer_s_day_in_a_real_browser(demo: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    pages = Pages(browser, demo["url"], demo["backend"])
    pages.open("/")
    assert "/login" in browser.current_url
    pages.shot("login")
    pages.accessible("login")
    pages.sign_in(demo["email"], demo["password"])
    assert browser.current_url.rstrip("/") == demo["url"]
    assert pages.find("#kpi-customers .big").text.replace(",", "").isdigit()
    pages.visit("/", "overview")
    # keyboard: the first Tab reaches the skip link, which moves the focus to the content
    pages.find("body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("class") == "skip"
    for path, name in (("/analytics", "analytics"), ("/settings", "settings")):
        pages.visit(path, name)

    # search a customer (live, through htmx under the CSP) and open the 360°
    pages.visit("/customers", "customers")
    first = pages.find("#results tbody tr")
    last_name = first.find_elements(By.TAG_NAME, "td")[2].text.split()[-1]
    box = pages.find("#q")
    box.clear()
    box.send_keys(last_name)
    pages.wait_for(lambda d: "q=" in d.current_url)  # htmx pushed the searched URL
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert rows and all(last_name in r.text for r in rows)
    pages.shot("search")
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    pages.wait_for(lambda d: re.search(r"/customers/\d+$", d.current_url))
    pages.shot("customer-360")
    pages.accessible("customer-360")
    customer_path = "/" + browser.current_url.split("/", 3)[3]
    before = int(pages.find("#available-points").text.replace(",", ""))

    # adjust points
    pages.find("#points").send_keys("123")
    pages.find("#reason").send_keys("browser test goodwill")
    pages.find("#adjust").click()
    pages.wait_for(lambda d: "Points adjusted." in d.page_source)
    assert int(pages.find("#available-points").text.replace(",", "")) == before + 123
    pages.shot("points-adjusted")
    pages.visit("/activity", "activity")
    assert "points.adjusted" in browser.page_source and customer_path in browser.page_source

    # a POST without the CSRF token is refused, and so is a forged one
    assert pages.post_from_page(f"{customer_path}/points", {"points": "5", "reason": "x"}) == 403
    forged = {"points": "5", "reason": "x", "csrf_token": "forged"}
    assert pages.post_from_page(f"{customer_path}/points", forged) == 403

    # switch language
    pages.open(customer_path)
    from selenium.webdriver.support.ui import Select

    Select(pages.find("#language")).select_by_value("fr")
    pages.find("#language-apply").click()
    pages.wait_for(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr")
    assert "Points disponibles" in browser.page_source
    pages.visit("/", "overview-fr")
    assert pages.find("nav a[aria-current=page]").text == "Vue d'ensemble"
    assert pages.find("#kpi-liability").text.endswith("€")  # French money: 1 234,56 €

    # phone width: nothing wider than the screen
    browser.set_window_size(390, 844)
    for path, name in (("/", "phone-overview"), (customer_path, "phone-customer")):
        pages.open(path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.execute_script("return window.innerWidth") + 1, (path, width)
        pages.shot(name)
    browser.set_window_size(1280, 900)

    # sign out
    pages.open("/settings")
    pages.find("#logout").click()
    pages.wait_for(lambda d: "/login" in d.current_url)
    pages.open("/customers")
    assert "/login" in browser.current_url

    # a read-only user sees everything and can change nothing
    pages.sign_in("reader@demo.test", READER_PASSWORD)
    pages.open(customer_path)
    assert not browser.find_elements(By.CSS_SELECTOR, "#adjust-form, #coupon-form, #erase-form")
    pages.shot("read-only-customer")
    token = pages.find("input[name=csrf_token]").get_attribute("value")
    points = int(pages.find("#available-points").text.replace(" ", "").replace("\u202f", ""))
    for path, fields in (
        (f"{customer_path}/points", {"points": "5", "reason": "x"}),
        (f"{customer_path}/erase", {"confirm": "ERASE"}),
        ("/settings/api-keys", {"scope_admin": "1"}),
    ):
        assert pages.post_from_page(path, {**fields, "csrf_token": token}) == 403, path
    pages.open(customer_path)
    assert (
        int(pages.find("#available-points").text.replace(" ", "").replace("\u202f", "")) == points
    )
    pages.no_csp_violation()
