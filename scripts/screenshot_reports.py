"""Screenshot every report page in a real headless browser, to look at legends, ticks and tables by eye.

    python scripts/screenshot_reports.py [REPORTS_DIR ...] [--out DIR] [--width 1200] [--height 6000]

Renders each ``<dir>/index.html`` (default: ``reports`` and ``reports/quick``) with Chromium in headless mode
(``chromium``, ``chromium-browser`` or ``google-chrome`` on the PATH; on Debian/Ubuntu:
``apt-get install chromium``) into ``<out>/<dir name>.png`` (default out: ``screenshots/``, git-ignored). A
development tool, not part of ``make test``: a browser is a large dependency and a picture needs a person to judge.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(f"no headless browser found (looked for {', '.join(BROWSERS)}); install one, e.g. "
                     "apt-get install chromium")


def screenshot(page: Path, png: Path, width: int, height: int, exe: str) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
           f"--screenshot={png.resolve()}", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not png.exists():
        raise SystemExit(f"{exe} could not render {page}: {done.stderr.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, default=[Path("reports"), Path("reports/quick")])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=6000, help="pixels; the page is cut off below")
    args = parser.parse_args(argv)
    exe = browser()
    pages = [d / "index.html" for d in args.dirs if (d / "index.html").exists()]
    if not pages:
        print(f"no index.html under {', '.join(map(str, args.dirs))}; run `diffsuite demo` first", file=sys.stderr)
        return 2
    for page in pages:
        png = args.out / f"{'_'.join(page.parent.parts[-2:])}.png"
        screenshot(page, png, args.width, args.height, exe)
        print(f"{page} -> {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
