"""Check the quickstart's bit-width explorer in a real browser (``make browser-check``).

Starts JupyterLab on the project's kernel (127.0.0.1, a free port, a random token), opens a copy of
``notebooks/00_quickstart.ipynb`` with ``profile`` set to ``--profile`` in headless Chromium (Debian's
``chromium`` driven by selenium through Debian's ``chromium-driver``; nothing downloads a browser),
runs every cell, moves the bit-width slider with the keyboard, waits for the redraw and saves a
screenshot of the explorer after the move to ``figures/explorer.png``.

The notebook's results and figures go to a temporary folder (the committed ``results/`` and
``figures/`` other than the screenshot are untouched); the run cache is the project's, so a warm
cache means no training. Prints one line per step with its time; on failure one error line and a
screenshot of the whole page beside ``--out``.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's emqlib, as for the kernel below

from emqlib.harness.storage import atomic_write_bytes  # noqa: E402

COMMITTED_SCREENSHOT = ROOT / "figures" / "explorer.png"  # the README's image
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1500,1400"]
NOTEBOOK = "00_quickstart.ipynb"
KERNEL = "emqlib"


class CheckFailed(RuntimeError):
    """The browser check did not see what it expects; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parameterized_copy(folder: Path, profile: str) -> Path:
    """The quickstart with its parameters cell set to ``profile`` (the source is never touched)."""
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source, n = re.subn(r'^profile\s*=\s*"[^"]*"', f'profile = "{profile}"', cell.source, flags=re.MULTILINE)
    if n != 1:
        raise CheckFailed(f"{NOTEBOOK}: the parameters cell has no `profile = \"...\"` line to set")
    path = folder / NOTEBOOK
    nbformat.write(nb, path)
    return path


def start_lab(folder: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1 only, serving ``folder``, kernels importing this checkout's emqlib."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "EMQ_RESULTS_DIR": str(folder / "results"), "EMQ_FIGURES_DIR": str(folder / "figures"),
           "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    env.setdefault("EMQ_RUNS_DIR", str(ROOT / "runs"))
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0",
               f"--MappingKernelManager.default_kernel_name={KERNEL}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               f"--LabApp.workspaces_dir={folder / 'workspaces'}", f"--LabApp.user_settings_dir={folder / 'settings'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # as root (CI, containers) JupyterLab refuses to start without it
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(lab: subprocess.Popen) -> None:
    """End JupyterLab and its kernels (its own process group)."""
    if lab.poll() is not None:
        return
    os.killpg(lab.pid, signal.SIGTERM)
    try:
        lab.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(lab.pid, signal.SIGKILL)
        lab.wait()


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition()`` until it returns something truthy; CheckFailed naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def server_up(port: int, token: str, lab: subprocess.Popen) -> bool:
    if lab.poll() is not None:
        raise CheckFailed(f"JupyterLab exited with status {lab.returncode}; see its log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            raise CheckFailed(f"{path} is missing: install Debian's {package} (make browser-check does it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='emq-chromium-')}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


# JavaScript run in the page: JupyterLab's own app object (exposed by --LabApp.expose_app_in_browser)
NOTEBOOK_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext || !panel.sessionContext.session) return null;
const kernel = panel.sessionContext.session.kernel;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
return {kernel: kernel ? kernel.status : 'none',
        executed: cells.filter(c => c.model.executionCount !== null).length, code_cells: cells.length,
        errors: cells.flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')
                     .map(o => o.ename + ': ' + o.evalue)};
"""
RUN_ALL = "window.jupyterapp.commands.execute('notebook:run-all-cells');"


def explorer_status(driver) -> str:
    from selenium.webdriver.common.by import By

    for element in driver.find_elements(By.CSS_SELECTOR, ".widget-html-content"):
        if "redrawn in" in element.text:
            return element.text
    return ""


def check(profile: str, out: Path, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()

    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="emq-browser-check-") as tmp:
        folder = Path(tmp)
        parameterized_copy(folder, profile)
        port, token = free_port(), secrets.token_hex(16)
        log_path = folder / "jupyterlab.log"
        with open(log_path, "w") as log:
            lab = start_lab(folder, port, token, log)
            driver = None
            try:
                wait_for(lambda: server_up(port, token, lab), 120, "JupyterLab to answer")
                step(f"JupyterLab up on 127.0.0.1:{port}")
                driver = browser()
                driver.get(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
                wait_for(lambda: (s := driver.execute_script(NOTEBOOK_STATE)) and s["kernel"] == "idle", 180,
                         "the notebook to open with an idle kernel")
                step("notebook open, kernel idle; running all cells")
                driver.execute_script(RUN_ALL)

                def finished():
                    state = driver.execute_script(NOTEBOOK_STATE)
                    if state and state["errors"]:
                        raise CheckFailed(f"a cell failed: {state['errors'][0]}")
                    done = state and state["executed"] == state["code_cells"] and state["kernel"] == "idle"
                    return done and explorer_status(driver)

                before = wait_for(finished, timeout, f"every cell of {NOTEBOOK} to run and the explorer to draw", 1.0)
                step(f"all cells ran; explorer shows: {before}")
                handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
                driver.execute_script("arguments[0].scrollIntoView({block: 'start'});",
                                      driver.find_elements(By.CSS_SELECTOR, ".jp-Cell")[-1])
                image = driver.find_element(By.CSS_SELECTOR, ".jupyter-widgets img")
                old_src = image.get_attribute("src")
                handle.click()
                moved = time.monotonic()
                handle.send_keys(Keys.ARROW_RIGHT)
                after = wait_for(lambda: (s := explorer_status(driver)) != before and s, 30,
                                 "the explorer to redraw after the slider moved", 0.05)
                seconds = time.monotonic() - moved
                readout = driver.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout").text
                if image.get_attribute("src") == old_src:
                    raise CheckFailed("the status changed but the figure did not")
                step(f"slider moved to {readout}; redrawn in the browser {seconds:.2f} s after the key press: {after}")
                time.sleep(0.5)  # the new image decoded and laid out
                cell = driver.find_elements(By.CSS_SELECTOR, ".jp-Cell")[-1]
                atomic_write_bytes(out, cell.find_element(By.CSS_SELECTOR, ".jp-OutputArea").screenshot_as_png)
                step(f"screenshot of the explorer after the move: {out}")
            except Exception:
                if driver is not None:
                    failed = out.with_name(out.stem + "-failed.png")
                    driver.save_screenshot(str(failed))
                    print(f"whole page at the failure: {failed}", file=sys.stderr)
                print(f"JupyterLab log (last lines):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
                raise
            finally:
                if driver is not None:
                    driver.quit()
                stop(lab)
    step("done")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"],
                        help="profile of the quickstart run (cpu: the shipped run, no training; smoke: trains in "
                             "seconds, on synthetic images)")
    parser.add_argument("--out", type=Path, default=COMMITTED_SCREENSHOT)
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for running the notebook")
    args = parser.parse_args(argv)
    if args.profile != "cpu" and args.out.resolve() == COMMITTED_SCREENSHOT:
        # the README shows the cpu profile's explorer; another profile's would be a picture of other data
        parser.error(f"{COMMITTED_SCREENSHOT.relative_to(ROOT)} is the cpu profile's screenshot; give --out "
                     f"another file for the {args.profile} profile")
    return run_check("browser check", check, args.profile, args.out, args.timeout)


def run_check(name: str, check_function, *args) -> int:
    """Exit status of ``check_function(*args)`` offline: 0, or 1 after one line that says what failed."""
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never fetch a driver or a browser
    try:
        check_function(*args)
    except CheckFailed as error:
        print(f"{name} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
