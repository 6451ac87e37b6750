"""PDF rendering for reports and the handover pack.

`render_pdf(template, **context)` renders a Jinja template from templates/ to HTML and
WeasyPrint turns it into PDF bytes. The HTML never leaves the server and may carry its own
<style> (the browser CSP does not apply to it); pictures are inline SVG.

WeasyPrint would otherwise fetch any URL a document names (http, file, data): a report
that ever contained a user-supplied link could make the server read local files or call
internal hosts. `LockedFetcher` allows only ``file:`` URLs that resolve inside static/
(symlinks and ``..`` resolved first) and refuses everything else, so a document can use
our own stylesheets, fonts and images and nothing more. Our charts travel inside the
document as ``data:image/svg+xml;base64`` images, the one other form accepted.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from flask import render_template
from weasyprint import HTML, URLFetcher

STATIC = (Path(__file__).resolve().parent.parent.parent / "static").resolve()


class LockedFetcher(URLFetcher):
    """Fetches file: URLs under static/ only; every other URL is refused."""

    def __init__(self, root: Path = STATIC):
        super().__init__(allowed_protocols=("file", "data"), allow_redirects=False)
        self.root = root.resolve()

    def fetch(self, url, headers=None):
        if url.startswith("data:image/svg+xml;base64,"):
            # Our own charts, embedded in the document: no file or network access.
            return super().fetch(url, headers)
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ValueError("only local assets may be loaded")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise ValueError("only files under static/ may be loaded")
        return super().fetch(path.as_uri(), headers)


def render_pdf(template: str, **context) -> bytes:
    """Render templates/<template> with `context` to PDF bytes (call inside an app context)."""
    html = render_template(template, **context)
    document = HTML(string=html, base_url=STATIC.as_uri() + "/", url_fetcher=LockedFetcher())
    return document.write_pdf()
