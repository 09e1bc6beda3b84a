"""Open every page of the built site in a real headless Chromium and check what a reader sees.

Run:  mkdocs build --strict && python docs/check_site.py [--site site]

Serves the built site on a local port and, for every page: it loads with a title; every image has
loaded (naturalWidth > 0); every formula is typeset (each MathML <math> element has a nonzero box) and
stays inside the text column (or inside a box of it that scrolls);
every internal link points to a file of the site; the browser console holds no error.  Then each phrase of
SEARCHES, typed into the site's search, must have its first result on the page a reader wants.  Prints one
line per page (what was opened and what was found) and exits 1 if any check fails.  Needs Debian's
chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) and selenium ('.[docs]').
"""
import argparse
import functools
import http.server
import os
import sys
import tempfile
import threading
import urllib.parse

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]

PAGE_STATE = """
const images = [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);
const maths = [...document.querySelectorAll('math')].map(m => {
    const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
const column = (document.querySelector('article') || document.body).getBoundingClientRect();
// a formula past the text column's right edge, unless a box around it that fits the column scrolls it
// (a block formula's own box is the column's width: what it draws is measured through a range over its content)
const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
const drawn = m => { const r = document.createRange(); r.selectNodeContents(m); return r.getBoundingClientRect(); };
const outside = [...document.querySelectorAll('math')].filter(m => {
    let e = m.parentElement; while (e && e !== document.body) {
        if (scrolls(e)) return e.getBoundingClientRect().right > column.right + 1;
        e = e.parentElement; }
    return drawn(m).right > column.right + 1; }).length;
const links = [...document.querySelectorAll('a[href]')].map(a => a.href)
    .filter(h => h.startsWith(location.origin));
return {title: document.title, images: images, maths: maths, outside: outside, links: links,
        ready: document.readyState, text: document.body.innerText.length};
"""


def pages(site):
    for root, _, files in os.walk(site):
        if os.path.relpath(root, site).split(os.sep)[0] in ("assets", "search"):
            continue
        for name in files:
            if name == "index.html":
                yield os.path.relpath(os.path.join(root, name), site)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(site):
    handler = functools.partial(_Quiet, directory=site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def exists(site, url):
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path).lstrip("/")
    target = os.path.join(site, path)
    return os.path.isfile(target) or os.path.isfile(os.path.join(target, "index.html"))


#: phrases a reader searches for, and the page the first result must be on (the course's prose, not the API reference)
SEARCHES = (("VIMCO leave-one-out", "estimator_family/"), ("defensive wake", "estimator_family/"),
            ("stochastic control flow", "control_flow/"), ("multisets of K particles", "exact_oracle/"),
            ("bridge several latent sites", "bridges/"))


def searched(driver, base):
    """Problems of the site's search: each phrase of SEARCHES typed into it, its first result's page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    problems = []
    for phrase, page in SEARCHES:
        driver.get(base + "?q=" + urllib.parse.quote_plus(phrase))
        try:
            WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__link"))
        except Exception:                           # selenium's TimeoutException: no result at all
            problems.append(f"search {phrase!r}: no result")
            continue
        first = driver.find_elements(By.CSS_SELECTOR, ".md-search-result__link")[0].get_attribute("href")
        if not first.startswith(base + page):
            problems.append(f"search {phrase!r}: the first result is {first[len(base):]!r}, not on {page!r}")
    return problems


def check(site):
    from selenium.webdriver.support.ui import WebDriverWait
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failures, totals = [], {"pages": 0, "images": 0, "maths": 0, "links": 0}
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            for page in sorted(pages(site)):
                url = base + page[: -len("index.html")]
                driver.get(url)
                WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                    "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
                state = driver.execute_script(PAGE_STATE)
                errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                bad_images = [src for src, ok in state["images"] if not ok]
                bad_maths = state["maths"].count(False)
                broken = sorted({h for h in state["links"] if not exists(site, h)})
                problems = (["no title"] if not state["title"] else []) + \
                    ([f"{len(bad_images)} image(s) not shown: {bad_images}"] if bad_images else []) + \
                    ([f"{bad_maths} formula(s) not typeset"] if bad_maths else []) + \
                    ([f"{state['outside']} formula(s) past the text column"] if state["outside"] else []) + \
                    ([f"broken link(s): {broken}"] if broken else []) + \
                    ([f"console: {errors}"] if errors else [])
                where = "/" + page[: -len("index.html")]
                if problems:
                    print(f"FAIL {where}: " + "; ".join(problems), flush=True)
                else:
                    print(f"ok   {where:<26} {len(state['images'])} image(s), {len(state['maths'])} formula(s), "
                          f"{len(state['links'])} internal link(s), no console error", flush=True)
                failures += problems
                totals["pages"] += 1
                totals["images"] += len(state["images"]) - len(bad_images)
                totals["maths"] += len(state["maths"]) - bad_maths
                totals["links"] += len(state["links"])
            found = searched(driver, base)
            for problem in found:
                print(f"FAIL {problem}", flush=True)
            failures += found
        finally:
            driver.quit()
            server.shutdown()
    print(f"{totals['pages']} pages opened in Chromium: {totals['images']} images shown, {totals['maths']} formulas "
          f"typeset, {totals['links']} internal links followed to files, {len(SEARCHES)} searches; "
          f"{len(failures)} problem(s)")
    return not failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       "site"), help="the built site (default: site/)")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.site, "index.html")):
        sys.exit(f"check_site.py: no built site in {args.site}; run mkdocs build --strict first")
    sys.exit(0 if check(args.site) else 1)


if __name__ == "__main__":
    main()
