"""The web page at / in headless Chromium (Selenium), against a real gunicorn over a seeded data dir.

Screenshots go to test-artifacts/web-ui/. Chromium and its driver are Debian packages (.ci/run installs
them); without them the test skips locally and fails under CI=true.
"""
import uuid
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.helpers import ROOT, gunicorn_server, run_module, service_env, unavailable

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "web-ui"
WAIT_SECONDS = 60
PHONE_WIDTH = 375


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        unavailable(f"the browser test needs {' and '.join(missing)}: "
                    "apt-get install -y chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn on loopback, started once the seed CLI has finished (a Milvus Lite dir takes one process)."""
    tmp = tmp_path_factory.mktemp("web-ui")
    env = service_env(tmp / "data")
    for args in (("products", "--count", "300"), ("interactions", "--users", "20", "--min", "5", "--max", "12")):
        seeded = run_module("seed", *args, env=env)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
    with gunicorn_server(tmp / "data", tmp / "gunicorn.log") as base_url:
        yield base_url


@pytest.fixture
def page(browser, server, request):
    """The page freshly loaded, its filters filled; a screenshot of the last state is kept, pass or fail."""
    browser.delete_all_cookies()
    browser.get(server)
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: len(Select(driver.find_element(By.ID, "category")).options) > 1, "facets not loaded")
    settled(browser, "user-results")
    yield browser
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}-last.png"))


def settled(driver, region_id: str) -> str:
    """Wait until the region's latest request has been answered; return its status line."""
    region = driver.find_element(By.ID, region_id)
    WebDriverWait(driver, WAIT_SECONDS).until(lambda _: region.get_attribute("aria-busy") == "false",
                                              f"{region_id} still loading")
    return region.find_element(By.CLASS_NAME, "status").text


def shown_products(driver, region_id: str) -> list[dict]:
    return driver.execute_script("""
        return [...document.querySelectorAll(`#${arguments[0]} .product`)].map(item => ({
            product_id: item.dataset.productId,
            name: item.querySelector('.product-name').textContent,
            brand: item.querySelector('.brand').textContent,
            category: item.querySelector('.category').textContent,
            price: parseFloat(item.querySelector('.price').textContent),
            scores: item.querySelector('.scores').textContent,
        }))""", region_id)


def product_buttons(driver, region_id: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#{region_id} .product-name")


def search(driver, query: str) -> str:
    field = driver.find_element(By.ID, "q")
    field.clear()
    field.send_keys(query, Keys.ENTER)
    return settled(driver, "search-results")


def set_number(driver, field_id: str, value: str) -> None:
    field = driver.find_element(By.ID, field_id)
    field.clear()
    field.send_keys(value)


def screenshot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / name))


def horizontal_overflow(driver) -> int:
    return driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")


def test_every_control_has_a_label(page):
    unlabelled = page.execute_script("""
        return [...document.querySelectorAll('input, select, button')]
            .filter(control => !(control.labels?.length || control.textContent.trim()))
            .map(control => control.outerHTML)""")
    assert unlabelled == []


def test_search_filter_open_a_product_and_see_recommendations_change(page, server):
    guest = page.find_element(By.ID, "user-id").get_attribute("value")

    assert "running shoes" in search(page, "running shoes")
    results = shown_products(page, "search-results")
    assert "Sports" in [product["category"] for product in results[:5]]
    assert all("dense rank" in product["scores"] and "sparse rank" in product["scores"] for product in results)
    screenshot(page, "1-search.png")

    target = next(product for product in results if product["category"] == "Sports")
    Select(page.find_element(By.ID, "category")).select_by_value("Sports")
    set_number(page, "max-price", str(target["price"]))
    page.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    settled(page, "search-results")
    filtered = shown_products(page, "search-results")
    assert target["product_id"] in [product["product_id"] for product in filtered]
    assert all(product["category"] == "Sports" and product["price"] <= target["price"] for product in filtered)
    screenshot(page, "2-filtered.png")

    opened = filtered[0]
    product_buttons(page, "search-results")[0].send_keys(Keys.ENTER)  # keyboard, not a mouse click
    assert page.find_element(By.ID, "product-name").text == opened["name"]
    assert page.switch_to.active_element.get_attribute("id") == "product-name"
    settled(page, "similar-results")
    similar = shown_products(page, "similar-results")
    assert similar and opened["product_id"] not in [product["product_id"] for product in similar]
    WebDriverWait(page, WAIT_SECONDS).until(
        lambda driver: "Recorded view" in driver.find_element(By.ID, "product-status").text)
    last_event = requests.get(f"{server}/users/{guest}", timeout=30).json()["recent_events"][0]
    assert (last_event["product_id"], last_event["event_type"]) == (opened["product_id"], "view")
    screenshot(page, "3-product.png")

    shopper = f"shopper-{uuid.uuid4().hex[:8]}"
    user_field = page.find_element(By.ID, "user-id")
    user_field.clear()
    user_field.send_keys(shopper, Keys.ENTER)
    status = settled(page, "user-results")
    assert shopper in status and "cold start" in status
    cold_start = [product["product_id"] for product in shown_products(page, "user-results")]
    assert cold_start and page.find_element(By.ID, "event-summary").text == "No events yet."
    screenshot(page, "4-cold-start.png")

    page.find_element(By.ID, "max-price").clear()
    search(page, "running shoes")
    for clicks in range(1, 4):
        product_buttons(page, "search-results")[clicks].click()
        settled(page, "user-results")
        assert len(page.find_elements(By.CSS_SELECTOR, "#event-list li")) == clicks
    assert requests.get(f"{server}/users/{shopper}", timeout=30).json()["counts"]["view"] == 3
    status = settled(page, "user-results")
    recommended = shown_products(page, "user-results")
    assert "cold start" not in status and "strategy hybrid" in status
    assert [product["product_id"] for product in recommended] != cold_start
    assert sum(product["category"] == "Sports" for product in recommended) >= len(recommended) / 2
    assert all("content" in product["scores"] for product in recommended)
    screenshot(page, "5-recommendations.png")

    page.find_element(By.ID, "weight-content").send_keys(Keys.HOME)  # content weight 0: popularity alone
    assert "weights popular 1.00" in settled(page, "user-results")
    Select(page.find_element(By.ID, "strategy")).select_by_value("content")
    assert "strategy content" in settled(page, "user-results")
    assert page.find_element(By.ID, "weights").get_property("disabled")


def test_phone_width_has_no_horizontal_overflow(page):
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": PHONE_WIDTH, "height": 800, "deviceScaleFactor": 2, "mobile": True})
    try:
        assert page.execute_script("return window.innerWidth") == PHONE_WIDTH
        search(page, "running shoes")
        product_buttons(page, "search-results")[0].click()
        settled(page, "similar-results")
        settled(page, "user-results")
        assert horizontal_overflow(page) <= 0
        page.execute_script("window.scrollTo(0, 0)")
        screenshot(page, "6-phone.png")
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def variant_rows(driver) -> dict[str, list[str]]:
    return driver.execute_script("""
        return Object.fromEntries([...document.querySelectorAll('#variant-table tbody tr')].map(row =>
            [row.dataset.variant, [...row.cells].map(cell => cell.textContent)]))""")


def test_experiment_results_show_impressions_ctr_purchases_and_the_test(page, server):
    experiment = requests.post(f"{server}/experiments", timeout=30, json={
        "name": f"ui fusion {uuid.uuid4().hex[:6]}", "surface": "search", "variants": [
            {"name": "control", "share": 0.5, "params": {}},
            {"name": "weighted", "share": 0.5, "params": {"fusion": "weighted"}}]}).json()
    try:
        page.refresh()  # the experiment list is read when the page loads
        settled(page, "experiment-results")
        page.find_element(By.ID, "personalize").click()
        status = search(page, "running shoes")
        variant = status.split("experiment variant ")[1].split(",")[0]
        assert variant in ("control", "weighted")
        product_buttons(page, "search-results")[0].click()  # a view attributed to this list, position 1
        WebDriverWait(page, WAIT_SECONDS).until(
            lambda driver: "Recorded view" in driver.find_element(By.ID, "product-status").text)
        page.find_element(By.CSS_SELECTOR, "#product-panel button[data-event=purchase]").click()
        WebDriverWait(page, WAIT_SECONDS).until(
            lambda driver: "Recorded purchase" in driver.find_element(By.ID, "product-status").text)

        assert Select(page.find_element(By.ID, "experiment")).first_selected_option.get_attribute("value") == \
            experiment["experiment_id"]  # the newest first

        def counted(driver):  # an impression buffered by another gunicorn worker is written within a second
            driver.find_element(By.CSS_SELECTOR, "#experiment-form button[type=submit]").click()
            settled(driver, "experiment-results")
            return variant_rows(driver)[variant][2:4] == ["1", "1"]

        WebDriverWait(page, WAIT_SECONDS).until(counted, "the attributed view is not counted")
        rows = variant_rows(page)
        assert list(rows) == ["control", "weighted"]
        shown = rows[variant]
        assert shown[4].startswith("1.000 [") and shown[6] == "1" and shown[7].startswith("1.000 [")
        other = rows["weighted" if variant == "control" else "control"]
        assert other[2] == "0" and other[3] == "0"
        assert rows["control"][5] == "–" and rows["control"][8] == "–"  # the control is what others are tested against
        assert "no impressions yet" in rows["weighted"][8] or "p = " in rows["weighted"][8]
        assert horizontal_overflow(page) <= 0
        page.execute_script("document.getElementById('experiments-panel').scrollIntoView()")
        screenshot(page, "7-experiment.png")
    finally:
        requests.post(f"{server}/experiments/{experiment['experiment_id']}/stop", timeout=30)
