"""The status page on the twin, in a real headless browser (Debian's chromium): the overview,
the sky with the twin's drone, a self-test behind the technician's password, the logs, and
nothing that could radiate. Then bad input, while the daemon keeps detecting."""

from __future__ import annotations

import http.client
import json
import subprocess

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from edgenode.web.auth import hash_password
from tests.conftest import EDGENODE, ROOT, Mosquitto, free_port, wait_for_port
from tests.simdaemon import SimTwin
from tests.web.browser import phone_browser

PASSWORD = "mast-technician-7"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web")
    broker = Mosquitto(workdir).start()
    port = free_port()
    twin = SimTwin("one-drone-crossing", workdir / "state", broker, extra={"status_page": {
        "enabled": True, "bind": ["127.0.0.1"], "port": port,
        "password_hash": hash_password(PASSWORD)}})
    daemon = twin.daemon()
    daemon.status()
    wait_for_port(port, timeout_s=20)
    yield daemon, f"http://127.0.0.1:{port}", port
    daemon.stop()
    twin.stop()
    broker.stop()


@pytest.fixture(scope="module")
def browser():
    driver = phone_browser()
    yield driver
    driver.quit()


def wait(driver, condition, timeout_s: float = 20):
    return WebDriverWait(driver, timeout_s).until(condition)


def rows(driver, selector: str, attribute: str) -> dict[str, str]:
    """{attribute: text} of the elements, read in one go (the live pages redraw each second,
    so element handles go stale)."""
    return dict(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => [e.getAttribute(arguments[1]), e.textContent])", selector, attribute))


def test_the_overview_shows_the_node_and_each_part(node, browser):
    _, base, _ = node
    browser.get(base + "/")
    parts = wait(browser, lambda d: rows(d, "#parts tr", "data-part"))
    assert {"radar", "acoustic", "effector", "detect", "link"} <= set(parts), parts
    identity = browser.execute_script("return document.getElementById('identity').textContent")
    assert "sim/twin-01" in identity and "Effector" in identity and "Key switch" in identity
    assert "operate" in identity.lower()  # the twin's key switch


def test_the_sky_shows_the_twins_drone_near_its_true_bearing(node, browser):
    daemon, base, _ = node
    browser.get(base + "/sky")

    def drone_errors(driver) -> list[float] | None:
        """Each drone mark's bearing error against where the twin's drone was at that track's
        time; None until one is drawn near it (a mark may be a passing split of the track)."""
        marks = driver.execute_script(
            "return [...document.querySelectorAll('circle.track[data-class=drone]')]"
            ".map(e => [+e.dataset.bearing, +e.dataset.t])")
        truth = [r for r in daemon.truth() if r.get("id") == "drone-1"]
        errors = []
        for bearing, t in marks:
            at = min(truth, key=lambda r: abs(r["t"] - t))
            errors.append(abs((bearing - at["bearing_deg"] + 180.0) % 360.0 - 180.0))
        return errors if any(e <= 10.0 for e in errors) else None

    assert wait(browser, drone_errors, timeout_s=60)


def test_a_wrong_password_is_refused_and_the_right_one_runs_a_self_test(node, browser):
    daemon, base, _ = node
    browser.delete_all_cookies()
    browser.get(base + "/selftest")
    assert not browser.find_elements(By.ID, "run-selftest")
    browser.find_element(By.NAME, "password").send_keys("not-the-password")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(browser, lambda d: "wrong password" in d.page_source)
    browser.get(base + "/selftest")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(browser, EC.element_to_be_clickable((By.ID, "run-selftest"))).click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#checks [data-check]")),
         timeout_s=60)
    checks = rows(browser, "#checks [data-check]", "data-check")
    parts = {name.split(".")[0] for name in checks}  # checks are part.check (docs/selftest.md)
    assert {"radar", "acoustic", "relay"} <= parts, checks
    records = _audit(daemon)
    logins = [r for r in records if r["kind"] == "web_login"]
    assert [r["data"]["ok"] for r in logins][-2:] == [False, True]
    assert any(r["kind"] == "web_selftest" for r in records)


def test_the_logs_page_filters_by_level(node, browser):
    _, base, _ = node
    browser.get(base + "/logs")
    wait(browser, lambda d: d.find_element(By.ID, "log").text.strip())
    assert " info " in browser.find_element(By.ID, "log").text
    browser.find_element(By.CSS_SELECTOR, "#level option[value=error], #level option:nth-child(4)"
                         ).click()
    wait(browser, lambda d: " info " not in d.find_element(By.ID, "log").text)


def test_no_page_offers_a_way_to_radiate(node, browser):
    _, base, port = node
    for path in ("/", "/sky", "/selftest", "/logs"):
        browser.get(base + path)
        wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")
        forms = {f.get_attribute("action").removeprefix(base)
                 for f in browser.find_elements(By.TAG_NAME, "form")}
        assert forms <= {"/login", "/logout"}, (path, forms)
        buttons = {b.text for b in browser.find_elements(By.TAG_NAME, "button")}
        assert buttons <= {"Log in", "Log out", "Run self-test"}, (path, buttons)
        text = browser.page_source.lower()
        for word in ("engage", "disengage", "/arm", "radiate", "jam "):
            assert word not in text, (path, word)
    for method, path in (("POST", "/api/engage"), ("POST", "/api/arm"), ("POST", "/relay"),
                         ("PUT", "/api/selftest"), ("POST", "/api/status")):
        assert _http(port, method, path)[0] in (404, 405), (method, path)


def test_bad_input_gets_clear_errors_and_the_daemon_keeps_detecting(node):
    daemon, _, port = node
    before = daemon.status()
    status, body = _http(port, "POST", "/login", body=b"password=" + b"x" * 20000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413, body
    codes = [_http(port, "POST", "/api/selftest")[0] for _ in range(500)]
    assert set(codes) == {401}
    logins = [_http(port, "POST", "/login", body=b"password=guess",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})[0]
              for _ in range(500)]
    assert logins.count(429) >= 490 and set(logins) <= {401, 429}
    for cookie in ("edgenode_session=" + "A" * 4000, "edgenode_session=\x00\x01",
                   "edgenode_session", "edgenode_session=; edgenode_session=x", "=;=;"):
        status, _ = _http(port, "POST", "/api/selftest", headers={"Cookie": cookie})
        assert status in (400, 401), cookie
        assert _http(port, "GET", "/", headers={"Cookie": cookie})[0] in (200, 400)
    status, _ = _http(port, "GET", "/api/logs?level=everything")
    assert status == 400
    after = daemon.status()
    assert after["stages"]["detect"]["state"] == "ok"
    assert after["radar_frames"] != before["radar_frames"]  # still detecting


def _http(port: int, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def _audit(daemon) -> list[dict]:
    out = subprocess.run([*EDGENODE, "audit", "export", "--state-dir", str(daemon.state)],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
