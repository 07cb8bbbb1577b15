"""End to end in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium through /usr/bin/chromedriver: no browser download) against a served demo shop:
sign in, every page, search and open a customer, adjust points, switch language, sign out;
a read-only user changes nothing; a POST without CSRF token is refused; axe-core finds no
serious or critical violation on any page; the Content-Security-Policy blocks nothing the
pages need. Screenshots go to ``test-artifacts/dashboard/`` (gitignored)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, PG_URL
from tests.fixtures.served import FIDELE, _wait_up, free_port, fresh_database
from tests.fixtures.served import Served as _Served

CHROMIUM = os.environ.get("FIDELE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FIDELE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text("utf-8")
READER_PASSWORD = "read only password"


def _browser_or_skip() -> None:
    """A missing browser fails in CI (``CI=true``); elsewhere the test says why it skipped."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the browser: {message}")
    pytest.skip(message)


@pytest.fixture(params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A demo shop served by ``fidele serve``, with its admin login and a read-only user."""
    _browser_or_skip()
    with fresh_database(request.param, PG_URL, tmp_path) as url:
        env = {
            **os.environ,
            "FIDELE_DATABASE_URL": url,
            "FIDELE_EMBEDDED_WORKER": "false",
            "FIDELE_ENV": "test",
            "FIDELE_SECRET_KEY": "browser-test-secret",
        }
        env.pop("FIDELE_TEST_POSTGRES_URL", None)
        built = _run(env, "demo", "--customers", "150", "--no-serve", "--json")
        shop = json.loads(built.stdout)
        _run(
            env, "user", "create", "--merchant", str(shop["merchant_id"]), "--email",
            "reader@demo.test", "--role", "read-only", stdin=READER_PASSWORD,
        )  # fmt: skip
        port = free_port()
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [FIDELE, "serve", "--port", str(port), "--no-access-log"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            served = _Served(f"http://127.0.0.1:{port}", url, env, process, log)
            try:
                _wait_up(served)
                yield {**shop["dashboard"], "url": served.url, "backend": request.param}
            finally:
                process.terminate()
                process.wait(timeout=20)


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    done = subprocess.run(
        [FIDELE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done


@pytest.fixture
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # loopback only: no proxy (the environment may name one), no network at all otherwise
    options.add_argument("--no-proxy-server")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.add_argument("--lang=en-GB")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Pages:
    """The browser on the served demo: visit, check, screenshot."""

    def __init__(self, driver: Any, url: str, backend: str) -> None:
        self.driver, self.url = driver, url
        self.shots = ARTIFACTS / backend
        self.shots.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait_for(self, condition: Any, seconds: float = 15) -> Any:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        # a page being replaced (a form's answer loading) makes the old elements stale
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(self.driver, seconds, ignored_exceptions=ignored).until(condition)

    def shot(self, name: str) -> None:
        self.n += 1
        self.driver.save_screenshot(str(self.shots / f"{self.n:02d}-{name}.png"))

    def accessible(self, name: str) -> None:
        """axe-core on the current page: no serious or critical violation."""
        self.driver.execute_script(AXE)
        found = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done("
            "r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))));"
        )
        bad = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name}: {json.dumps(bad, indent=1)}"

    def no_csp_violation(self) -> None:
        logs = self.driver.get_log("browser")
        blocked = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
        assert not blocked, blocked

    def visit(self, path: str, name: str) -> None:
        self.open(path)
        assert self.driver.title.endswith("fidele"), (path, self.driver.title)
        self.shot(name)
        self.accessible(name)
        self.no_csp_violation()

    def sign_in(self, email: str, password: str) -> None:
        self.open("/login")
        self.find("#email").send_keys(email)
        self.find("#password").send_keys(password)
        self.find("#sign-in").click()
        self.wait_for(lambda d: "/login" not in d.current_url)

    def post_from_page(self, path: str, fields: dict[str, str]) -> int:
        """A form POST made by script in the signed-in page (same origin, same cookies)."""
        return int(
            self.driver.execute_async_script(
                "const [path, fields, done] = arguments;"
                "fetch(path, {method: 'POST', body: new URLSearchParams(fields),"
                " redirect: 'manual', credentials: 'same-origin'})"
                ".then(r => done(r.status), e => done(-1));",
                path,
                fields,
            )
        )


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
