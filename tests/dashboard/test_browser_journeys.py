"""Segments, journeys, messages and newsletters end to end in headless Chromium (Selenium
through /usr/bin/chromedriver) against a served demo shop: build a segment and watch the live
count follow the criteria (htmx under the CSP), save it and open a member's 360° with its
journeys and messages, switch a journey off and on, preview a message on a real customer;
axe-core finds no serious violation on any of these pages, the CSP blocks nothing, phone
width fits; a read-only user changes nothing. Screenshots in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import re
from typing import Any

from tests.fixtures.browser import READER_PASSWORD, Pages


def _count(pages: Pages) -> str:
    return str(pages.find("#count-value").text)


def test_segments_and_journeys_in_a_real_browser(demo: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    pages = Pages(browser, demo["url"], demo["backend"])
    pages.sign_in(demo["email"], demo["password"])

    # the segment builder: the count follows the criteria as they are typed
    pages.visit("/segments", "segments")
    assert pages.find("nav a[aria-current=page]").text == "Segments"
    pages.find("#field_0").send_keys("orders.count")
    Select(pages.find("#op_0")).select_by_value("gte")
    pages.find("#value_0").send_keys("1")
    pages.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#count-value"))
    first = _count(pages)
    value = pages.find("#value_0")
    value.clear()
    value.send_keys("3")
    pages.wait_for(lambda d: _count(pages) != first)
    second = _count(pages)
    assert int(re.sub(r"\D", "", second)) < int(re.sub(r"\D", "", first))
    # an unknown field: the error names the criterion, then the count comes back
    pages.find("#field_1").send_keys("orders.colour")
    pages.wait_for(lambda d: "Criterion 2" in d.find_element(By.ID, "live-count").text)
    pages.shot("segment-builder-error")
    pages.find("#field_1").clear()
    pages.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#count-value"))
    assert _count(pages) == second
    pages.shot("segment-builder")
    pages.accessible("segment-builder")
    pages.find("#seg-name").send_keys("Three orders or more")
    pages.find("#save-segment").click()
    pages.wait_for(lambda d: re.search(r"/segments/\d+$", d.current_url))
    assert "Segment saved." in browser.page_source
    assert pages.find("#segment-count strong").text == second
    pages.shot("segment")
    pages.accessible("segment")
    pages.no_csp_violation()

    # a member's 360°: journeys and messages
    pages.find("#members tbody a").click()
    pages.wait_for(lambda d: re.search(r"/customers/\d+$", d.current_url))
    assert pages.find("#journeys h2").text == "Journeys"
    assert pages.find("#message-totals").text.startswith("Sent")
    pages.shot("customer-journeys")
    pages.accessible("customer-journeys")

    # journeys: switch one off and on again
    pages.visit("/journeys", "journeys")
    row = pages.find("#flows tbody tr")
    flow_id = row.get_attribute("id").split("-")[1]
    assert pages.find(f"#status-{flow_id}").text == "active"
    pages.find(f"#switch-{flow_id}").click()
    pages.wait_for(lambda d: "Journey switched off." in d.page_source)
    assert pages.find(f"#status-{flow_id}").text == "paused"
    pages.shot("journey-off")
    pages.find(f"#switch-{flow_id}").click()
    pages.wait_for(lambda d: "Journey switched on." in d.page_source)
    assert pages.find(f"#status-{flow_id}").text == "active"
    pages.visit(f"/journeys/{flow_id}", "journey")
    assert pages.find("#steps tbody tr")

    # a message previewed on a real customer
    pages.visit("/journeys/messages", "messages")
    pages.find("#template-flow_welcome").click()
    pages.wait_for(lambda d: "/journeys/messages/" in d.current_url)
    assert pages.find("#customer").get_attribute("value")  # a customer is offered
    pages.find("#show-preview").click()
    pages.wait_for(lambda d: d.find_elements(By.ID, "preview-subject"))
    assert pages.find("#preview-subject").text.startswith("Welcome to")
    assert "{{" not in pages.find("#preview-text").text
    pages.shot("message-preview")
    pages.accessible("message-preview")
    pages.no_csp_violation()
    pages.visit("/newsletters", "newsletters")

    # phone width: nothing wider than the screen
    browser.set_window_size(390, 844)
    for path, name in (("/segments", "phone-segments"), (f"/journeys/{flow_id}", "phone-journey")):
        pages.open(path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.execute_script("return window.innerWidth") + 1, (path, width)
        pages.shot(name)
    browser.set_window_size(1280, 900)

    # a read-only user sees the pages and changes nothing
    pages.open("/settings")
    pages.find("#logout").click()
    pages.wait_for(lambda d: "/login" in d.current_url)
    pages.sign_in("reader@demo.test", READER_PASSWORD)
    pages.visit("/journeys", "read-only-journeys")
    assert not browser.find_elements(By.CSS_SELECTOR, f"#switch-{flow_id}")
    token = pages.find("input[name=csrf_token]").get_attribute("value")
    for path, fields in (
        (f"/journeys/{flow_id}/status", {"status": "paused"}),
        ("/segments", {"name": "nope", "field_0": "orders.count", "op_0": "gte", "value_0": "1"}),
        ("/journeys/library/welcome", {}),
    ):
        assert pages.post_from_page(path, {**fields, "csrf_token": token}) == 403, path
    pages.open("/journeys")
    assert pages.find(f"#status-{flow_id}").text == "active"
    pages.no_csp_violation()
