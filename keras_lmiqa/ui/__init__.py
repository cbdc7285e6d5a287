"""Pages for people: photos sorted by quality, with where the model found the problem.

- `report.write_report`: the page `lmiqa score DIR --html OUT.html` writes (one file,
  thumbnails embedded, no network);
- `server_page.routes`: the page `lmiqa serve --ui` serves at `/` of the REST port,
  scoring dropped photos with the server's own predict endpoint.

Both pages run one static bundle kept in `static/` (`lmiqa-ui.js`, `lmiqa-ui.css`: plain
JavaScript and CSS, no build step); `bundle` assembles the HTML around it.
"""
