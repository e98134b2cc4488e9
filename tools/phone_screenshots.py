"""The README's phone screenshots (docs/screenshots/*.png), made again by anyone with Debian's
Chromium: the platform on loopback with the demo family (the same in-process platform the
portal's browser tests use, on a throwaway SQLite database), a 360×740 phone screen, Japanese
pages, then each PNG shrunk with pngquant and optipng when installed (apt-get install pngquant
optipng) and checked to stay under 80 KB.

    .venv/bin/python tools/phone_screenshots.py            # from the repository root
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the repository's packages and test helpers

from playwright.sync_api import ViewportSize, sync_playwright  # noqa: E402

from phr_core import migrations  # noqa: E402
from phr_core.config import load_settings  # noqa: E402
from phr_core.services import SERVICES  # noqa: E402
from phr_server.demo_family import CHILD_ID  # noqa: E402
from tests.browser import CHROMIUM_ARGS  # noqa: E402
from tests.portal.live_platform import PARENT, platform_environ, running  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 360, "height": 740}
MAX_BYTES = 80 * 1024
# (file, portal path or None for the IdP's sign-in page, what the reader sees)
SHOTS = (
    ("phone-signin.png", None),
    ("phone-home.png", "/"),
    ("phone-vaccinations.png", f"/me/children/{CHILD_ID}/vaccinations"),
    ("phone-history.png", "/me/history"),
)


def shrink(path: Path) -> None:
    """Fewer colours (pngquant), then lossless recompression (optipng), when installed."""
    pngquant, optipng = shutil.which("pngquant"), shutil.which("optipng")
    if pngquant:
        quantize = [pngquant, "--force", "--skip-if-larger", "--quality=60-90", "--strip"]
        # exit 98/99: not smaller / quality not reached; the file is then left as it was
        subprocess.run([*quantize, "--output", str(path), str(path)], check=False)  # noqa: S603
    if optipng:
        subprocess.run([optipng, "-quiet", "-o2", str(path)], check=True)  # noqa: S603


def main() -> int:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(platform_environ(Path(tmp), f"sqlite:///{tmp}/phr.db"))
        for service in SERVICES:
            migrations.upgrade(service, settings.database_urls[service.name])
        with running(settings) as p, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_context(locale="ja-JP", viewport=PHONE).new_page()
            page.goto(p.portal + "/")
            page.click("#sign-in")
            page.wait_for_url(p.idp + "/login*")
            for name, path in SHOTS:
                if path is None:
                    page.screenshot(path=str(OUT / name))
                    page.fill("#person", PARENT)
                    page.click("#dev-login button[type=submit]")
                    page.wait_for_url(p.portal + "/*")
                    continue
                page.goto(p.portal + path)
                page.screenshot(path=str(OUT / name))
            browser.close()
    too_big = []
    for name, _ in SHOTS:
        shrink(OUT / name)
        size = (OUT / name).stat().st_size
        print(f"{OUT.relative_to(ROOT) / name}: {size // 1024} KB")
        if size > MAX_BYTES:
            too_big.append(name)
    if too_big:
        print("over 80 KB (install pngquant and optipng): " + ", ".join(too_big), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
