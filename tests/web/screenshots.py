"""`make screenshots`: each status page at phone size (390x844) on the twin, into
docs/screenshots/. Runs a private broker, the daemon on one-drone-crossing and chromium."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from edgenode.web.auth import hash_password
from tests.conftest import ROOT, Mosquitto, free_port, wait_for_port
from tests.simdaemon import SimTwin
from tests.web.browser import PHONE, phone_browser

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshot-pass"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work).start()
        port = free_port()
        twin = SimTwin("one-drone-crossing", work / "state", broker, extra={"status_page": {
            "enabled": True, "port": port, "password_hash": hash_password(PASSWORD)}})
        daemon = twin.daemon()
        browser = phone_browser()
        try:
            daemon.status()
            wait_for_port(port, timeout_s=20)
            base = f"http://127.0.0.1:{port}"
            wait = WebDriverWait(browser, 60)
            browser.get(base + "/sky")
            print("screenshots: waiting for the twin's drone on the sky page")
            wait.until(EC.presence_of_element_located(
                (By.CSS_SELECTOR, "circle.track[data-class=drone]")))
            browser.save_screenshot(str(OUT / "sky.png"))
            browser.get(base + "/")
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#parts tr")))
            browser.save_screenshot(str(OUT / "overview.png"))
            browser.get(base + "/selftest")
            browser.find_element(By.NAME, "password").send_keys(PASSWORD)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait.until(EC.element_to_be_clickable((By.ID, "run-selftest"))).click()
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#checks [data-check]")))
            browser.save_screenshot(str(OUT / "selftest.png"))
            browser.get(base + "/logs")
            time.sleep(1.0)
            browser.save_screenshot(str(OUT / "logs.png"))
        finally:
            browser.quit()
            daemon.stop()
            twin.stop()
            broker.stop()
    wrong = 0
    for name in ("overview", "sky", "selftest", "logs"):
        path = OUT / (name + ".png")
        size = png_size(path)
        print(f"screenshots: {path} {size[0]}x{size[1]}")
        wrong += size != PHONE
    if wrong:
        print(f"screenshots: {wrong} not at phone size {PHONE[0]}x{PHONE[1]}", file=sys.stderr)
    return 1 if wrong else 0


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk."""
    head = path.read_bytes()[16:24]
    return int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")


if __name__ == "__main__":
    sys.exit(main())
