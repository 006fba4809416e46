"""The Chromium that the browser tests drive, and ``make browser``, which gets one.

The tests take Playwright's own Chromium when it is installed (``python -m playwright install
chromium``, the usual way on Linux, macOS and Windows when online), else the system's
(``chromium`` on PATH, ``/usr/bin/chromium``, the macOS app). ``make browser`` runs

    python tests/chromium.py              # try Playwright's download, else the system's; exit 1 if none
    python tests/chromium.py --if-missing # the step of `make test`: only when no browser is found; exit 0

Offline, Playwright's download fails within seconds (and is cut off after
``BROWSER_INSTALL_TIMEOUT`` seconds, default 600); a system Chromium then serves. With neither,
it prints the one command that installs Chromium on this system.
"""
from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium",
                     "/Applications/Chromium.app/Contents/MacOS/Chromium",
                     os.path.expandvars(r"%LOCALAPPDATA%\Chromium\Application\chrome.exe"),
                     r"C:\Program Files\Chromium\Application\chrome.exe")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
INSTALL = [sys.executable, "-m", "playwright", "install", "chromium"]


def playwright_chromium() -> Path | None:
    """Playwright's own Chromium when it is installed, else None (also without Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as pw:
            path = Path(pw.chromium.executable_path)
    except Exception:               # the driver failed to start: no usable Playwright
        return None
    return path if path.exists() else None


def system_chromium() -> Path | None:
    """The system's Chromium: ``chromium`` / ``chromium-browser`` on PATH, or a usual place."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return Path(found)
    return next((Path(p) for p in SYSTEM_CANDIDATES if Path(p).exists()), None)


@functools.cache
def find_chromium() -> Path | None:
    """The browser the tests use: Playwright's Chromium, else the system's, else None."""
    return playwright_chromium() or system_chromium()


def install_hint(system: str | None = None, os_release: str | None = None) -> str:
    """The one command that installs Chromium on ``system`` (``platform.system()``)."""
    system = system or platform.system()
    if system == "Darwin":
        return "brew install --cask chromium"
    if system == "Windows":
        return "winget install Hibbiki.Chromium"
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    ids = {word.strip('"').lower() for line in os_release.splitlines()
           if line.startswith(("ID=", "ID_LIKE=")) for word in line.split("=", 1)[1].split()}
    if "ubuntu" in ids:
        return "sudo snap install chromium"
    if "debian" in ids:
        return "sudo apt-get install chromium"
    if ids & {"fedora", "rhel", "centos"}:
        return "sudo dnf install chromium"
    if "arch" in ids:
        return "sudo pacman -S chromium"
    if ids & {"suse", "opensuse"}:
        return "sudo zypper install chromium"
    return "install Chromium with your system's package manager"


def try_playwright_download(timeout: float) -> str | None:
    """Run ``playwright install chromium``; None on success, else one line saying why not."""
    print("browser: downloading Playwright's Chromium (python -m playwright install chromium; about 170 MB)...",
          flush=True)
    try:
        done = subprocess.run(INSTALL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:.0f} s (BROWSER_INSTALL_TIMEOUT)"
    if done.returncode == 0:
        return None
    lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith("Error")), lines[-1] if lines else "failed")


def launch_error(path: Path) -> str | None:
    """Start ``path`` headless through Playwright and close it: None if it works, else why not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return f"the Python package playwright is missing: {sys.executable} -m pip install playwright"
    try:
        with sync_playwright() as pw:
            pw.chromium.launch(executable_path=str(path), args=LAUNCH_ARGS, headless=True).close()
    except Exception as err:
        return str(err).strip().splitlines()[0]
    return None


def main(argv: list[str]) -> int:
    if_missing = "--if-missing" in argv
    if if_missing and (found := find_chromium()):
        print(f"browser: the browser tests use {found}")
        return 0
    failed = None
    if not playwright_chromium():
        failed = try_playwright_download(float(os.environ.get("BROWSER_INSTALL_TIMEOUT", 600)))
        if failed:
            print(f"browser: Playwright's download failed: {failed}")
    find_chromium.cache_clear()
    found = find_chromium()
    if found is None:
        print("browser: no Chromium found, so the browser tests will be skipped (a failure under CI).\n"
              f"browser: install one with:  {install_hint()}\n"
              "browser: then run `make test` again (or `make browser` to check).")
        return 0 if if_missing else 1
    which = "Playwright's" if found == playwright_chromium() else "the system's"
    if error := launch_error(found):
        print(f"browser: {found} does not start: {error}")
        if which == "Playwright's" and platform.system() == "Linux":
            print("browser: its libraries are missing; install them with:  "
                  f"sudo {sys.executable} -m playwright install-deps chromium")
        return 0 if if_missing else 1
    print(f"browser: the browser tests use {which} Chromium: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
