#!/usr/bin/env python3
"""The web view in a real browser (issue 15): headless Chromium driven by
Selenium (Debian: chromium, chromium-driver, python3-selenium) against a real
sluice-coordinator with two real sluice-workers draining a small backlog.

Asserts on the DOM: the overview's numbers equal `sluice report --json`; an
Unblock click without the admin token is refused and changes nothing, with it
the blocked runs are released (seen in `sluice status`); a phase whose stderr
is `<script>alert(1)</script>` shows that text as text (no alert, no script
element); ids with ':' and '.' survive links; a drain paused by the
telemetry-loss alarm shows it on the workers page and Resume continues it.
Saves a screenshot of each page
under --out-dir (CI artifacts).

A missing Chromium, chromedriver or Selenium is a failure, never a skip.

  web_browser_test.py --bin-dir build/bin --out-dir build/screenshots
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ADMIN_TOKEN = "admin-token-for-the-browser-test-0001"
WORKER_TOKEN = "worker-token-for-the-browser-test-01"
HOSTILE = "<script>alert(1)</script>"

# Good runs emit telemetry and succeed; every phase of the bad runs fails
# with the hostile stderr, so its fingerprint blocks them (repeats = 2).
PHASE_SCRIPT = r"""#!/bin/sh
run="$1"; phase="$2"
case "$run" in
  bad*)
    if [ -e "$(dirname "$0")/fixed" ]; then
      # The cause is fixed, but telemetry is lost: successes with no events.
      sleep 1
      exit 0
    fi
    echo "$run/$phase is about to fail"
    printf '%s\n' '<script>alert(1)</script>' >&2
    exit 1 ;;
esac
if [ "$TELEMETRY_DB_ENABLED" = 1 ] && [ -n "$SLUICE_TELEMETRY_FILE" ]; then
  echo '{"type":"unit"}' >> "$SLUICE_TELEMETRY_FILE"
  echo '{"type":"unit"}' >> "$SLUICE_TELEMETRY_FILE"
  echo '{"type":"unit"}' >> "$SLUICE_TELEMETRY_FILE"
fi
sleep 0.3
echo "built $run/$phase"
exit 0
"""


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def wait_until(predicate, timeout, what, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    fail("timed out waiting for " + what)


class Cluster:
    """A coordinator and workers as child processes in their own groups."""

    def __init__(self, bin_dir, work):
        self.bin_dir = bin_dir
        self.work = work
        self.children = []

    def path(self, name):
        return os.path.join(self.work, name)

    def spawn(self, name, argv):
        out = open(self.path(name + ".out"), "w")
        err = open(self.path(name + ".err"), "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=err, start_new_session=True)
        self.children.append(proc)
        return proc

    def sluice(self, *args, ok=True):
        argv = [os.path.join(self.bin_dir, "sluice")] + list(args)
        argv += ["--coordinator", self.grpc, "--token-file", self.path("admin.token")]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if ok and r.returncode != 0:
            fail("sluice %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def sluice_json(self, *args):
        return json.loads(self.sluice(*args, "--json").stdout)

    def start(self):
        with open(self.path("admin.token"), "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        with open(self.path("workers.tokens"), "w") as f:
            f.write(WORKER_TOKEN + "\n")
        with open(self.path("worker.token"), "w") as f:
            f.write(WORKER_TOKEN + "\n")
        script = self.path("phase.sh")
        with open(script, "w") as f:
            f.write(PHASE_SCRIPT)
        os.chmod(script, 0o755)
        with open(self.path("backlog.jsonl"), "w") as f:
            for run in ["good-1", "good-2", "good:x.3", "bad:x.1", "bad:x.2", "bad:x.3"]:
                for i in range(1, 5):
                    f.write(json.dumps({"run_id": run, "phase_id": "p%d" % i, "phase_index": i}) + "\n")
        coordinator = self.spawn("coordinator", [
            os.path.join(self.bin_dir, "sluice-coordinator"), "--listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", "--store", "sqlite://" + self.path("state.db"),
            "--token-file", self.path("workers.tokens"),
            "--admin-token-file", self.path("admin.token"), "--log-level", "warn"])

        def ports():
            if coordinator.poll() is not None:
                fail("coordinator exited: " + open(self.path("coordinator.err")).read())
            out = open(self.path("coordinator.out")).read()
            web = re.search(r"web view on (http://\S+)", out)
            grpc = re.search(r"listening on port (\d+)", out)
            return (web.group(1), grpc.group(1)) if web and grpc else None

        self.url, port = wait_until(ports, 10, "the coordinator's ports")
        self.grpc = "127.0.0.1:" + port
        self.sluice("import", self.path("backlog.jsonl"))
        self.sluice("session", "start", "--max-fingerprint-repeats", "2",
                    "--max-attempts-per-phase", "1")
        for worker_id in ["w1", "w2"]:
            self.spawn(worker_id, [
                os.path.join(self.bin_dir, "sluice-worker"), "--coordinator", self.grpc,
                "--token-file", self.path("worker.token"), "--slots", "1",
                "--exec", script + " {run_id} {phase_id}", "--env", "TELEMETRY_DB_ENABLED=1",
                "--worker-id", worker_id, "--log-dir", self.path("logs-" + worker_id),
                "--grace-seconds", "1", "--lease-wait-ms", "500", "--log-level", "warn"])

    def stop(self):
        for proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.children):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def http(url, method="GET", token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def check_drain_prints_the_url(bin_dir, work):
    """`sluice drain` prints the web view's URL; --metrics-listen still works (old name)."""
    backlog = os.path.join(work, "tiny.jsonl")
    with open(backlog, "w") as f:
        f.write(json.dumps({"run_id": "tiny-1", "phase_id": "p1", "phase_index": 1}) + "\n")
    r = subprocess.run([os.path.join(bin_dir, "sluice"), "drain", backlog, "--exec", "/bin/true",
                        "--workers", "1", "--store", "sqlite://" + os.path.join(work, "tiny.db"),
                        "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "sluice drain exited %d: %s" % (r.returncode, r.stderr))
    check(re.search(r"web view on http://127\.0\.0\.1:\d+/", r.stdout),
          "sluice drain did not print the web view's URL: " + r.stdout)


def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        fail("python3-selenium is not installed (apt-get install python3-selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    check(chromium is not None, "chromium is not installed (apt-get install chromium)")
    check(os.path.exists(driver_path), "chromedriver is missing (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sluice-web-")
    cluster = Cluster(os.path.abspath(args.bin_dir), work)
    driver = None
    try:
        check_drain_prints_the_url(cluster.bin_dir, work)
        cluster.start()
        driver = browser()
        run_checks(cluster, driver, args.out_dir)
    finally:
        if driver is not None:
            driver.quit()
        cluster.stop()
    shutil.rmtree(work, ignore_errors=True)
    print("PASS: web view checks, screenshots in " + args.out_dir)


def run_checks(cluster, driver, out_dir):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    def shot(name):
        driver.save_screenshot(os.path.join(out_dir, name + ".png"))

    def open_page(fragment, page):
        driver.get(cluster.url + "#" + fragment)
        wait_until(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == page,
                   10, "the %s page" % page)

    def click(css):
        # The page redraws a table when a poll brings new data, so an element
        # found a moment ago may be gone by the click: find it again, as a
        # person would.
        from selenium.common.exceptions import StaleElementReferenceException

        def attempt():
            try:
                driver.find_element(By.CSS_SELECTOR, css).click()
                return True
            except StaleElementReferenceException:
                return False
        wait_until(attempt, 10, "a click on " + css)

    def no_alert():
        try:
            driver.switch_to.alert
        except NoAlertPresentException:
            return
        fail("a JavaScript alert opened: the hostile stderr ran as script")

    # The drain ends when only blocked work is left.
    wait_until(lambda: cluster.sluice_json("status").get("session_done"), 40, "the session to end")
    report = cluster.sluice_json("report")

    # Overview: the same numbers as the report (one definition of yield).
    def overview_matches():
        open_page("overview", "overview")
        done = driver.find_element(By.ID, "ov-done")
        values = {
            "done": int(done.get_attribute("data-value")),
            "total": int(done.get_attribute("data-total")),
            "attempts": int(driver.find_element(By.ID, "ov-attempts").get_attribute("data-value")),
            "events": int(driver.find_element(By.ID, "ov-events").get_attribute("data-value")),
            "yield": driver.find_element(By.ID, "ov-yield").text,
        }
        return values
    values = overview_matches()
    phases = report["phases"]
    expected = {
        "done": phases["succeeded"] + phases["failed"],
        "total": sum(phases.values()),
        "attempts": report["attempts"],
        "events": report["telemetry_events"],
        "yield": "%.2f" % report["yield_events_per_minute"],
    }
    check(values == expected, "overview %s != report %s" % (values, expected))
    check(report["telemetry_events"] > 0 and report["attempts"] > 0, "nothing drained: %s" % report)
    check(len(driver.find_elements(By.CSS_SELECTOR, "#chart-outcomes svg polyline")) > 0,
          "the outcome chart has no lines")
    shot("overview")

    # Fingerprints: the hostile text as text, one blocking fingerprint.
    fingerprints = cluster.sluice_json("fingerprints")["fingerprints"]
    blocked = [f for f in fingerprints if f["blocked"]]
    check(len(blocked) == 1, "expected one blocking fingerprint: %s" % fingerprints)
    fp = blocked[0]
    open_page("fingerprints", "fingerprints")
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-fingerprint='%s']" % fp["id"])
    check(fp["runs"][0] in row.text, "fingerprint row lacks its runs: " + row.text)
    check(HOSTILE in row.text, "the fingerprint's example error is not shown as text: " + row.text)
    check(not driver.find_elements(By.CSS_SELECTOR, "main script"), "a script element in the page")
    no_alert()
    shot("fingerprints")

    def fingerprint_skips():
        return [k for k in cluster.sluice_json("status")["skipped"]
                if fp["id"] in k["reason"] and k["kind"] == "excluded"]
    before = fingerprint_skips()
    check(before, "status shows no run excluded by the blocking fingerprint")

    # Runs and families: every run, the blocked ones with the typed reason.
    open_page("runs", "runs")
    table = driver.find_element(By.ID, "runs").text
    for run in report["runs"]:
        check(run["run_id"] in table, "run %s missing from the runs page" % run["run_id"])
    check(driver.find_elements(By.CSS_SELECTOR, "#runs [data-code='fingerprint_repeats']"),
          "no run shows the fingerprint_repeats skip reason")
    shot("runs")

    # Families and the skipped filter need every run at once: they show the
    # snapshot the coordinator takes in the background while the page is
    # open ("loading" on the very first view), with its time.
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(By.ID, "runs-group")).select_by_value("family")
    Select(driver.find_element(By.ID, "runs-state")).select_by_visible_text("skipped")
    wait_until(lambda: "Every run as of" in driver.find_element(By.ID, "runs-asof").text, 15,
               "the snapshot of every run")
    api = http(cluster.url + "api/runs?group=family&state=skipped")[1]
    check(api["rows"], "no skipped family: %s" % api)
    table = driver.find_element(By.ID, "runs").text
    for row in api["rows"]:
        check(row["family"] in table, "family %s missing from the page" % row["family"])
    blocked_families = {r["family"] for r in api["rows"]
                        if any(k["code"] == "fingerprint_repeats" for k in r["skips"])}
    check(blocked_families, "no family shows the fingerprint_repeats skip: %s" % api)
    # A family's runs blocked for one reason: one line, with the number of runs.
    lines = driver.find_elements(By.CSS_SELECTOR, "#runs [data-code='fingerprint_repeats']")
    check(len(lines) == len(blocked_families),
          "%d lines for %d blocked families" % (len(lines), len(blocked_families)))
    shot("runs-families-skipped")
    Select(driver.find_element(By.ID, "runs-group")).select_by_value("")
    Select(driver.find_element(By.ID, "runs-state")).select_by_value("")
    open_page("fingerprints", "fingerprints")

    # Actions are POST only and need the admin token.
    check(http(cluster.url + "api/unblock")[0] == 405, "GET /api/unblock was not refused")
    check(http(cluster.url + "api/unblock", "POST", None, {"fingerprint": fp["id"]})[0] == 401,
          "an unblock without a token was not refused with 401")
    check(http(cluster.url + "api/unblock", "POST", WORKER_TOKEN, {"fingerprint": fp["id"]})[0] == 403,
          "an unblock with a worker token was not refused with 403")

    # Unblock without a token: refused, nothing changes.
    click("button.unblock[data-fingerprint='%s']" % fp["id"])
    wait_until(lambda: "Refused (401)" in driver.find_element(By.ID, "notice").text, 10,
               "the refusal to show")
    check(fingerprint_skips() == before, "a refused unblock changed the store")
    check([f for f in cluster.sluice_json("fingerprints")["fingerprints"] if f["blocked"]],
          "a refused unblock unblocked the fingerprint")

    # With the admin token, pasted once: released.
    driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    click("#token-use")
    click("button.unblock[data-fingerprint='%s']" % fp["id"])
    wait_until(lambda: "Unblocked" in driver.find_element(By.ID, "notice").text, 10,
               "the unblock to be confirmed")
    check(not fingerprint_skips(), "after the unblock, status still excludes runs for it")
    check(not [f for f in cluster.sluice_json("fingerprints")["fingerprints"] if f["blocked"]],
          "the fingerprint still blocks after the unblock")
    check(ADMIN_TOKEN not in driver.current_url, "the token is in the URL")
    check(driver.get_cookies() == [], "the page set a cookie")
    shot("fingerprints-unblocked")

    # Workers.
    open_page("workers", "workers")
    table = driver.find_element(By.ID, "workers").text
    check("w1" in table and "w2" in table, "workers missing: " + table)
    shot("workers")

    # Phase: an id with ':' and '.' through a link, the hostile stderr as text.
    run_id = sorted(r for r in fp["runs"])[0]
    open_page("phase?run=%s&phase=p1" % run_id, "phase")
    fields = driver.find_element(By.ID, "phase-fields").text
    check(run_id in fields, "the phase page does not show run %s: %s" % (run_id, fields))
    stderr = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#attempts pre.stderr"), 10,
                        "the attempt's stderr")
    check(stderr[0].get_attribute("textContent").strip() == HOSTILE,
          "stderr shown as %r" % stderr[0].get_attribute("textContent"))
    check(not driver.find_elements(By.CSS_SELECTOR, "#attempts script, main script"),
          "the stderr became a script element")
    no_alert()
    shot("phase")

    # Workers: a drain paused by the telemetry-loss alarm, resumed from the page.
    open(cluster.path("fixed"), "w").close()
    cluster.sluice("session", "start", "--on-telemetry-loss", "pause",
                   "--max-attempts-per-phase", "1")
    wait_until(lambda: (lambda st: st["leasing_paused"] and not st["active_leases"])(
        cluster.sluice_json("status")), 30, "the telemetry-loss alarm to pause leasing")
    finished = cluster.sluice_json("status")["session_finished"]
    open_page("workers", "workers")
    wait_until(lambda: driver.find_elements(By.ID, "resume"), 10, "the Resume button")
    check("telemetry" in driver.find_element(By.ID, "wk-banner").text, "the alarm is not shown")
    shot("workers-paused")
    click("#resume")
    wait_until(lambda: "Leasing resumed" in driver.find_element(By.ID, "notice").text, 10,
               "the resume to be confirmed")
    wait_until(lambda: cluster.sluice_json("status")["session_finished"] > finished, 20,
               "leasing to continue after the resume")

    # Keyboard: the navigation works with Enter, the skip link focuses the content.
    from selenium.webdriver.common.keys import Keys
    driver.find_element(By.ID, "nav-fingerprints").send_keys(Keys.ENTER)
    wait_until(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
               == "fingerprints", 10, "the fingerprints page by keyboard")
    driver.find_element(By.CSS_SELECTOR, "a.skip").send_keys(Keys.ENTER)
    check(driver.switch_to.active_element.get_attribute("id") == "main",
          "the skip link did not move focus to the content")
    check(driver.current_url.endswith("#fingerprints"), "the skip link changed the page")


if __name__ == "__main__":
    main()
