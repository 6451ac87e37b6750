"""Shared PDF rendering (WeasyPrint) with a URL fetcher that only reads files under static/."""

from service.reports.pdf import LockedFetcher, render_pdf

__all__ = ["LockedFetcher", "render_pdf"]
