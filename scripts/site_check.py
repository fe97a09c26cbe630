"""Check the static report in a real browser (``make site-check``, after ``make report``).

Opens ``site/index.html`` and one notebook page from disk (file:// addresses, as a reviewer opens them)
in headless Chromium, driven by selenium as in ``scripts/browser_check.py`` (Debian's ``chromium`` and
``chromium-driver``; nothing downloads a browser). Checks that each page loaded; that the index's two
claims tables together hold every row of ``results/claims.csv`` and the graded table has rows; that the
index links every executed notebook to a page that exists; that the notebook page shows at least as many
images as its notebook has image outputs; that no image on either page is broken; and that neither page
fetched anything from the network. Saves a screenshot of the top of the index to ``figures/site_index.png``
and one of the notebook page at its first figure to ``figures/site_notebook.png``. Prints one line per
step; on failure one error line and a screenshot of the page beside the screenshot it was to take.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pandas as pd

from browser_check import ROOT, CheckFailed, browser, run_check, wait_for  # this folder's browser check (sys.path[0])

from emqlib.harness import paths  # noqa: E402  (browser_check put this checkout first on sys.path)
from emqlib.harness.site import SCREENSHOTS  # noqa: E402
from emqlib.harness.storage import atomic_write_bytes  # noqa: E402

BROKEN_IMAGES = "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 100));"
NETWORK = ("return performance.getEntriesByType('resource').map(e => e.name)"
           ".filter(n => /^(https?|wss?):/.test(n));")


def open_page(driver, path: Path) -> None:
    if not path.exists():
        raise CheckFailed(f"{path} does not exist: run `make report` first")
    driver.get(path.absolute().as_uri())
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 60, f"{path.name} to load")


def page_is_sound(driver, name: str) -> None:
    """No broken image, nothing fetched from the network."""
    broken = driver.execute_script(BROKEN_IMAGES)
    if broken:
        raise CheckFailed(f"{name}: {len(broken)} broken images, the first {broken[0]}")
    remote = driver.execute_script(NETWORK)
    if remote:
        raise CheckFailed(f"{name}: fetched {len(remote)} resources from the network, the first {remote[0]}")


def image_outputs(notebook: Path) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return sum(1 for cell in nb.cells for output in cell.get("outputs", [])
               if any(kind.startswith("image/") for kind in output.get("data", {})))


def check(site: Path, notebook: str | None, index_png: Path, notebook_png: Path) -> None:
    from selenium.webdriver.common.by import By

    started = time.monotonic()

    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)

    claims = pd.read_csv(paths.results_dir() / "claims.csv")
    executed = sorted(paths.executed_notebooks_dir().glob("*.ipynb"))
    driver = browser()
    out = index_png
    try:
        open_page(driver, site / "index.html")
        graded = len(driver.find_elements(By.CSS_SELECTOR, "#findings tbody tr"))
        ungraded = len(driver.find_elements(By.CSS_SELECTOR, "#ungraded tbody tr"))
        if not graded or graded + ungraded != len(claims):
            raise CheckFailed(f"index: {graded} graded and {ungraded} other claim rows, results/claims.csv has "
                              f"{len(claims)} rows")
        links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "ol.notebooks a.title")]
        pages = [Path(unquote(urlparse(link).path)) for link in links]
        if [p.stem for p in pages] != [p.stem for p in executed] or not all(p.exists() for p in pages):
            raise CheckFailed(f"index: links {[p.name for p in pages]}, executed notebooks {[p.name for p in executed]}")
        page_is_sound(driver, "index")
        step(f"index: {graded} graded and {ungraded} other claims, {len(pages)} notebook pages linked, "
             f"{len(driver.find_elements(By.TAG_NAME, 'img'))} images, nothing fetched from the network")
        atomic_write_bytes(index_png, driver.get_screenshot_as_png())
        step(f"screenshot of the index: {index_png}")

        out = notebook_png
        page = next((p for p in pages if p.stem == notebook), None) if notebook else pages[0]
        if page is None:
            raise CheckFailed(f"the index links no notebook {notebook!r}")
        open_page(driver, page)
        shown = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
        expected = image_outputs(paths.executed_notebooks_dir() / f"{page.stem}.ipynb")
        if len(shown) < expected:
            raise CheckFailed(f"{page.name}: {len(shown)} output images shown, the notebook has {expected}")
        page_is_sound(driver, page.name)
        step(f"{page.name}: '{driver.title}', {len(shown)} output images ({expected} in the notebook), "
             "nothing fetched from the network")
        if shown:  # the first figure's cell at the top of the window
            cell = shown[0].find_element(By.XPATH, "./ancestor::div[contains(@class, 'jp-Cell')][1]")
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", cell)
            time.sleep(0.3)
        atomic_write_bytes(notebook_png, driver.get_screenshot_as_png())
        step(f"screenshot of {page.name}: {notebook_png}")
    except Exception:
        failed = out.with_name(out.stem + "-failed.png")
        driver.save_screenshot(str(failed))
        print(f"the page at the failure: {failed}", file=sys.stderr)
        raise
    finally:
        driver.quit()
    step("done")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the site make report built")
    parser.add_argument("--notebook", help="stem of the notebook page to open (default: the first)")
    parser.add_argument("--index-png", type=Path, default=ROOT / "figures" / SCREENSHOTS[0])
    parser.add_argument("--notebook-png", type=Path, default=ROOT / "figures" / SCREENSHOTS[1])
    args = parser.parse_args(argv)
    return run_check("site check", check, args.site, args.notebook, args.index_png, args.notebook_png)


if __name__ == "__main__":
    sys.exit(main())
