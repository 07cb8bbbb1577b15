"""End to end in headless Chromium on the demo storefront served by ``fidele demo``'s shop:
open the widget, the balance equals the API's, redeem a reward and have checkout evaluate
accept the code (with a merchant key made in the dashboard), copy the referral link, switch
the page's language, Escape and the focus trap; the widget's size; screenshots in
``test-artifacts/storefront/``."""

from __future__ import annotations

import gzip
import re
from typing import Any

import httpx

from tests.fixtures.browser import ROOT, Pages

WIDGET_BUDGET = 30 * 1024


class ShopPages(Pages):
    def __init__(self, driver: Any, url: str, backend: str) -> None:
        super().__init__(driver, url, backend)
        self.shots = ROOT / "test-artifacts" / "storefront" / backend
        self.shots.mkdir(parents=True, exist_ok=True)


def _digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def _merchant_key(pages: Pages, demo: dict[str, Any]) -> str:
    """An API key made as a merchant makes one: in the dashboard's settings."""
    pages.sign_in(demo["email"], demo["password"])
    pages.open("/settings")
    pages.find("#key-name").send_keys("storefront browser test")
    pages.find("#create-key").click()
    return str(pages.wait_for(lambda d: pages.find("#new-key")).text.strip())


def test_the_widget_on_the_demo_storefront(demo: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url = demo["url"]
    pages = ShopPages(browser, url, demo["backend"])
    key = _merchant_key(pages, demo)
    merchant_api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})

    served = httpx.get(f"{url}/storefront/widget.js")
    assert served.status_code == 200
    size = len(gzip.compress(served.content, 9))
    assert size < WIDGET_BUDGET, f"widget.js is {size} bytes gzipped"

    pages.open("/storefront/demo")
    tag = pages.find("script[data-token]")
    token, merchant = tag.get_attribute("data-token"), tag.get_attribute("data-merchant")
    customer = pages.find("#demo-customer").text
    shopper = httpx.Client(
        base_url=f"{url}/storefront/v1",
        headers={"Authorization": f"Bearer {token}"},
        params={"merchant": merchant},
    )
    root = pages.wait_for(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-fidele=widget]")
    ).shadow_root

    def inside(css: str) -> Any:
        return root.find_element(By.CSS_SELECTOR, css)

    launcher = inside("#fdl-launcher")
    pages.wait_for(lambda d: launcher.text == "Rewards")
    assert launcher.get_attribute("aria-expanded") == "false"
    pages.shot("launcher")

    # open: the balance is the API's
    launcher.click()
    pages.wait_for(lambda d: inside("#fdl-balance").text)
    me = shopper.get("/me").json()
    assert _digits(inside("#fdl-balance").text) == me["available"]
    assert (
        merchant_api.get(f"/v1/customers/{customer}/loyalty").json()["available"] == me["available"]
    )
    assert launcher.get_attribute("aria-expanded") == "true"
    panel = inside("#fdl-panel")
    assert panel.get_attribute("role") == "dialog" and panel.get_attribute("aria-modal") == "true"
    assert inside("[role=progressbar]").get_attribute("aria-valuenow") == str(me["tier_percent"])
    pages.shot("panel")
    pages.accessible("panel")  # axe-core reads the open shadow root too
    pages.no_csp_violation()

    # focus trap: Tab from the last control comes back to the first, in the panel
    focusable = root.find_elements(
        By.CSS_SELECTOR, "#fdl-panel button:not([disabled]), #fdl-panel a[href], #fdl-panel input"
    )
    focusable[-1].send_keys(Keys.TAB)
    assert (
        browser.execute_script(
            "return arguments[0].shadowRoot.activeElement.id", pages.find("[data-fidele=widget]")
        )
        == "fdl-close"
    )

    # redeem the first affordable reward: the code is accepted at checkout
    button = inside(".fdl-redeem")
    reward_id = button.get_attribute("id").removeprefix("fdl-redeem-")
    cost = next(
        r["points_cost"] for r in shopper.get("/rewards").json() if str(r["id"]) == reward_id
    )
    button.click()
    box = pages.wait_for(lambda d: inside(f"#fdl-code-{reward_id}"))
    code = box.get_attribute("value")
    assert code
    pages.wait_for(lambda d: _digits(inside("#fdl-balance").text) == me["available"] - cost)
    pages.shot("redeemed")
    cart = {
        "customer_id": customer,
        "currency": "EUR",
        "lines": [{"product_id": "demo-1", "quantity": 1, "unit_price": 12900}],
        "codes": [code],
    }
    evaluated = merchant_api.post("/v1/checkout/evaluate", json=cart)
    assert evaluated.status_code == 201, evaluated.text
    assert evaluated.json()["rejected_codes"] == []
    assert any(d["code"] for d in evaluated.json()["discounts"])

    # copy the referral link
    link = inside("#fdl-ref-link")
    assert link.get_attribute("value") == shopper.get("/referral").json()["link"]
    copy = inside("#fdl-ref-link-copy")
    copy.click()
    pages.wait_for(lambda d: copy.text == "Copied")
    pages.shot("referral-copied")

    # the page switches to French: the widget follows
    browser.execute_script("document.documentElement.lang = 'fr'")
    pages.wait_for(lambda d: launcher.text == "Fidélité")
    pages.wait_for(
        lambda d: "Récompenses" in inside("#fdl-rewards h3").get_attribute("textContent")
    )
    assert "Historique" in inside("#fdl-history h3").get_attribute("textContent")
    pages.shot("french")

    # Escape closes and gives the focus back to the launcher
    inside("#fdl-close").send_keys(Keys.ESCAPE)
    pages.wait_for(lambda d: launcher.get_attribute("aria-expanded") == "false")
    assert not panel.is_displayed()
    pages.shot("closed")
    pages.no_csp_violation()

    # the demo page in French from the start, and an anonymous visitor's widget
    pages.open("/storefront/demo?lang=fr")
    root = pages.wait_for(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-fidele=widget]")
    ).shadow_root
    pages.wait_for(lambda d: root.find_element(By.CSS_SELECTOR, "#fdl-launcher").text == "Fidélité")
