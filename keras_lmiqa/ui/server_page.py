"""The `lmiqa serve --ui` page: routes the REST server answers with static bytes.

`/` is a page where a person drops photos; its script sends them, base64 in TF
Serving's JSON, to this server's own `/v1/models/NAME:predict` (so the server's request
limits apply) in requests of at most `max_batch_size` photos and `max_request_bytes`.
The headers keep it same-origin: a CSP allowing only 'self' (and blob: previews), no
framing, no sniffing, no referrer.
"""

from __future__ import annotations

from keras_lmiqa.ui import bundle

SECURITY_HEADERS = {
    "Content-Security-Policy": bundle.SERVED_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def routes(model_name: str, max_batch_size: int, max_request_bytes: int) -> dict[str, tuple[bytes, dict]]:
    """{path: (body, headers)} of the page and its bundle."""
    document = bundle.page(
        "Photo quality", f"Scored by model {model_name!r} on this server. Quality is 0 to 1, higher is better.",
        body_data={"mode": "server", "model": model_name, "max-batch": max_batch_size,
                   "max-request-bytes": max_request_bytes},
        inline=False, drop_zone=True).encode("utf-8")
    page = (document, {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS})
    table = {"/": page, "/index.html": page}
    for name, content_type in bundle.CONTENT_TYPES.items():
        table[f"/static/{name}"] = (bundle.asset(name), {"Content-Type": content_type, **SECURITY_HEADERS})
    return table
