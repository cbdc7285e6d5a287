"""The HTML around the static bundle (`static/lmiqa-ui.js`, `static/lmiqa-ui.css`).

Both pages share one document shell: a header (title, counts, score range, order,
window toggle, histogram and colour legend), the photo grid, the error list and the
detail dialog. The report page inlines the bundle (one file to open or mail), the
serving page links it from the server; either way a Content-Security-Policy allows no
other origin, so neither page can load or send anything elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import string
from importlib import resources

SCRIPT, STYLE = "lmiqa-ui.js", "lmiqa-ui.css"
CONTENT_TYPES = {SCRIPT: "text/javascript; charset=utf-8", STYLE: "text/css; charset=utf-8"}


@functools.cache
def asset(name: str) -> bytes:
    """A bundle file's bytes (read once from the installed package)."""
    if name not in CONTENT_TYPES:
        raise KeyError(name)
    return (resources.files("keras_lmiqa.ui") / "static" / name).read_bytes()


def _sha256(data: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii") + "'"


def inline_policy() -> str:
    """CSP of the report page: only its own inlined script and style run, images are the
    embedded thumbnails or the photos beside the page (detail view), no connections."""
    return (f"default-src 'none'; script-src {_sha256(asset(SCRIPT))}; style-src {_sha256(asset(STYLE))}; "
            "img-src data: 'self' file:; base-uri 'none'; form-action 'none'")


# The serving page: same-origin script, style and requests; dropped photos are blob: URLs.
SERVED_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                 "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def json_script(data) -> str:
    """`data` as JSON safe inside <script type="application/json"> (no `</script>`, no `<!--`)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


# The document both pages share; `page` fills it ($-placeholders, string.Template).
_SHELL = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>$title</title>
$head
</head>
<body$attributes>
<header>
  <div>
    <h1>$title</h1>
    <p class="subtitle">$subtitle</p>
    <p id="summary" aria-live="polite"></p>
    <div class="controls">
      <label>Scores from <input type="number" id="low" min="0" max="1" step="0.05" value="0.00"></label>
      <label>to <input type="number" id="high" min="0" max="1" step="0.05" value="1.00"></label>
      <label>Order <select id="order">
        <option value="worst" selected>worst first</option>
        <option value="best">best first</option>
        <option value="name">by name</option>
      </select></label>
      <label><input type="checkbox" id="show-windows" checked> Show crop windows</label>
    </div>
    <p class="hint">Arrow keys move between photos, Enter opens one, Escape closes it.
      Windows are coloured by their crop score; the more opaque, the more weight the model gave them.</p>
  </div>
  <figure class="histogram">
    <svg id="histogram" viewBox="0 0 100 40" preserveAspectRatio="none" role="img"
         aria-labelledby="histogram-caption"></svg>
    <div class="legend" aria-hidden="true"></div>
    <div class="axis" aria-hidden="true"><span>0 worst</span><span>score</span><span>1 best</span></div>
    <figcaption id="histogram-caption"></figcaption>
  </figure>
</header>
<main>$drop
  <ul id="grid" aria-label="photos"></ul>
  <section id="errors-section" hidden>
    <h2 id="errors-heading"></h2>
    <ul id="errors"></ul>
  </section>
</main>
<dialog id="detail" aria-labelledby="detail-title">
  <div class="dialog-bar">
    <div><h2 id="detail-title"></h2><p class="subtitle" id="detail-facts"></p></div>
    <button type="button" id="detail-close">Close</button>
  </div>
  <div id="detail-picture"></div>
  <p class="hint"><code id="detail-path"></code> · left/right arrows: previous/next photo</p>
</dialog>$payload
$script
</body>
</html>
""")

_DROP_ZONE = """
  <section id="drop" tabindex="0" role="button" aria-describedby="drop-hint">
    <p><strong>Drop photos here</strong> or
      <label><input type="file" id="files" multiple accept="image/jpeg,image/png,image/gif,image/bmp"></label></p>
    <p class="hint" id="drop-hint">JPEG, PNG, GIF or BMP; they go to this server only and are not stored.</p>
    <p id="status" aria-live="polite"></p>
  </section>"""


def page(title: str, subtitle: str, *, body_data: dict, inline: bool, data: str | None = None,
         drop_zone: bool = False) -> str:
    """The HTML document. `body_data`: data-* attributes of <body> (read by the script);
    `data`: `json_script` output of the report's photos; `drop_zone`: the serving page's
    file chooser."""
    escape = html.escape
    if inline:
        head = (f'<meta http-equiv="Content-Security-Policy" content="{escape(inline_policy())}">\n'
                f"<style>{asset(STYLE).decode('utf-8')}</style>")
        script = f"<script>{asset(SCRIPT).decode('utf-8')}</script>"
    else:
        head = f'<link rel="stylesheet" href="/static/{STYLE}">'
        script = f'<script src="/static/{SCRIPT}" defer></script>'
    return _SHELL.substitute(
        title=escape(title), subtitle=escape(subtitle), head=head, script=script,
        attributes="".join(f' data-{key}="{escape(str(value))}"' for key, value in body_data.items()),
        drop=_DROP_ZONE if drop_zone else "",
        payload=f'\n<script id="lmiqa-data" type="application/json">{data}</script>' if data is not None else "")
