"""The `lmiqa score --html` page: time to write it beyond scoring, its size, time to open it.

    python bench/html_report.py                  # 1,000 photos, and the size of a 5,000-photo page
    python bench/html_report.py --count 5000     # time the 5,000-photo page too
    python bench/html_report.py --photos DIR     # other photos (default: BIQ2021 when present)

The rows are what `lmiqa score` hands the page for a 512 px photo scored by the shipped
model (`scored_rows`: 16 finest windows of 128 px and a 2 x 2 grid, crop scores and
weights); the scoring itself is left out, as the target is "beyond scoring". Photos are
BIQ2021's (512 x 512 JPEG) when /work/data/biq2021 or $BIQ2021 holds them, else made ones.
Opening is timed in headless Chromium (Debian's chromium + chromium-driver, Selenium):
from navigation to the script's first render with the first screen of thumbnails decoded.
Targets: written in <= 10 s, opened in <= 3 s (1,000 photos); a 5,000-photo page < 50 MB.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "html_report"
BIQ2021 = os.environ.get("BIQ2021", "/work/data/biq2021")


def scored_rows(paths: list[str], seed: int = 0) -> list[dict]:
    """`lmiqa score` rows of `paths` with the shipped model's window layout on 512 px photos."""
    import numpy as np

    rng = np.random.default_rng(seed)
    fine = [[y, x, y + 128, x + 128] for y in range(0, 512, 128) for x in range(0, 512, 128)]
    coarse = [[y, x, y + 256, x + 256] for y in (0, 256) for x in (0, 256)]
    windows = np.array(fine + coarse, np.float32)
    rows = []
    for path in paths:
        score = float(rng.uniform(0.05, 0.95))
        rows.append({"path": path, "score": score, "mos": score, "error": None, "crop_windows": windows,
                     "crop_scores": rng.uniform(0, 1, len(windows)).astype(np.float32),
                     "crop_weights": rng.dirichlet(np.ones(len(windows))).astype(np.float32)})
    return rows


def photo_paths(count: int, folder: str | None) -> list[str]:
    folder = folder or os.path.join(BIQ2021, "Images")
    if os.path.isdir(folder):
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        if len(names) >= count:
            return [os.path.join(folder, n) for n in names[:count]]
    return common.generated_images(common.scratch_dir("html_report"), count, 512)


def open_seconds(page: str) -> tuple[float, int] | None:
    """(seconds to open `page` in headless Chromium, ms of the script's first render), or None without it."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get("about:blank")
        start = time.perf_counter()
        driver.get("file://" + os.path.abspath(page))
        WebDriverWait(driver, 120, poll_frequency=0.02).until(lambda d: d.execute_script(
            "const imgs = Array.from(document.querySelectorAll('#grid img')).slice(0, 12);"
            "return document.body.dataset.ready && imgs.length === 12 "
            "&& imgs.every((img) => img.complete && img.naturalWidth > 0);"))
        return time.perf_counter() - start, int(driver.execute_script("return document.body.dataset.ready"))
    finally:
        driver.quit()


def main(argv=None) -> int:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=1000, help="photos on the timed page")
    p.add_argument("--photos", default=None, help="folder of photos (default: BIQ2021's Images/, else made ones)")
    args = p.parse_args(argv)
    count = 100 if args.quick else args.count
    report = common.Report(BENCH, args)
    from keras_lmiqa.ui.report import write_report

    paths = photo_paths(count, args.photos)
    with tempfile.TemporaryDirectory(prefix="bench-html-") as folder:
        page = os.path.join(folder, "report.html")
        written = write_report(scored_rows(paths), page, source="bench")
        report.add(f"write_{count}", written["seconds"], "s", f"thumbnails + page for {count} photos, beyond scoring",
                   target="<= 10" if count == 1000 else None)
        report.add(f"write_{count}_cpu", written["cpu_seconds"], "s",
                   "CPU time of that (all threads): the wall time on an idle machine with one core")
        per_photo = written["bytes"] / count
        report.add(f"size_{count}", written["bytes"] / 2 ** 20, "MiB", f"page of {count} photos")
        report.add("size_5000_projected", 5000 * per_photo / 1e6, "MB",
                   f"5,000-photo page at {per_photo / 1024:.1f} KiB a photo", target="< 50")
        opened = open_seconds(page)
        if opened is None:
            print("no chromium/chromedriver: the page is not opened (make browser installs them)", file=sys.stderr)
        else:
            report.add(f"open_{count}", opened[0], "s", f"open the {count}-photo page: render + first thumbnails",
                       target="<= 3" if count == 1000 else None, script_ready_ms=opened[1])
    report.table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
