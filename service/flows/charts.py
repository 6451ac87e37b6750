"""Server-side SVG pictures of the published flows: one Sankey and two small charts.

Library choice: matplotlib draws everything (maintained, no browser, vector SVG that
WeasyPrint renders too). The Sankey/alluvial layout comes from ``sankey-mpl``, a small
pure-Python layer on matplotlib that lays out multi-column, left-to-right flows
(statutory teams -> offers -> outcomes) with reproducible output; matplotlib's own
``matplotlib.sankey`` draws engineering flow diagrams, not alluvial ones. Plotly would need
kaleido and a Chromium download to export SVG; pygal has no Sankey and puts a ``<style>``
element in every chart.

Only published figures are drawn: a flow shown as "<5" or "*" is left out of the picture
(never drawn at some width a reader could measure), and the figure's table beside it is the
text alternative. The pages' Content-Security-Policy forbids ``style`` attributes and
``<style>`` elements, so ``clean_svg`` rewrites matplotlib's inline styles as SVG
presentation attributes, drops ``<style>``/metadata, and labels the picture for screen
readers.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")  # never a GUI backend on a server

from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

# NHS identity colours.
BLUE, DARK_BLUE, GREY, PALE_GREY, GREEN, RED, WARM_YELLOW, PURPLE = (
    "#005eb8", "#003087", "#768692", "#d8dde0", "#007f3b", "#d5281b", "#ffb81c", "#330072")
OUTCOME_COLOURS = {
    "completed": GREEN, "in_progress": BLUE, "awaiting_decision": GREY,
    "declined": RED, "withdrawn_before_decision": PALE_GREY,
    "cancelled_after_acceptance": PURPLE, "failed": WARM_YELLOW,
}
OUTCOME_LABELS = {
    "completed": "Completed", "in_progress": "Accepted, in progress",
    "awaiting_decision": "Awaiting decision", "declined": "Declined",
    "withdrawn_before_decision": "Withdrawn before decision",
    "cancelled_after_acceptance": "Cancelled after acceptance", "failed": "Could not engage",
}
_RC = {"svg.fonttype": "none", "svg.hashsalt": "stepdown", "font.family": ["DejaVu Sans"],
       "font.size": 11}
# CSS properties matplotlib writes in style="" that are also SVG presentation attributes.
_PRESENTATION = {
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
    "stroke-linejoin", "stroke-linecap", "stroke-dasharray", "stroke-dashoffset",
    "stroke-miterlimit", "opacity", "font-family", "font-size", "font-weight", "font-style",
    "text-anchor", "dominant-baseline", "clip-path", "visibility", "display",
}
_FONT = re.compile(r"^(?:(?P<style>italic|oblique|normal)\s+)?(?:(?P<weight>bold|normal|\d{3})"
                   r"\s+)?(?P<size>[\d.]+)px\s+(?P<family>.+)$")


def _style_to_attributes(element: ET.Element) -> None:
    style = element.attrib.pop("style", None)
    if not style:
        return
    for declaration in style.split(";"):
        if ":" not in declaration:
            continue
        name, value = (part.strip() for part in declaration.split(":", 1))
        if name == "font":
            match = _FONT.match(value)
            if match:
                element.set("font-size", match["size"])
                element.set("font-family", match["family"].replace("'", "").strip())
                if match["weight"]:
                    element.set("font-weight", match["weight"])
                if match["style"]:
                    element.set("font-style", match["style"])
        elif name in _PRESENTATION:
            element.set(name, value)


def clean_svg(svg: str, title: str, element_id: str) -> str:
    """matplotlib SVG -> inline SVG without style attributes or elements, with a title."""
    root = ET.fromstring(svg)  # noqa: S314 - our own matplotlib output, not user input
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag.rsplit("}", 1)[-1]
            if tag in ("style", "metadata", "script"):
                parent.remove(child)
    for element in root.iter():
        _style_to_attributes(element)
    # matplotlib's global rule was: * { stroke-linejoin: round; stroke-linecap: butt }
    root.set("stroke-linejoin", "round")
    root.set("stroke-linecap", "butt")
    root.set("role", "img")
    root.set("aria-labelledby", f"{element_id}-title")
    root.set("id", element_id)
    root.set("class", "app-chart")
    # Scale to the container (page or PDF); the viewBox keeps the aspect ratio.
    root.attrib.pop("height", None)
    root.set("width", "100%")
    title_element = ET.Element(f"{{{SVG_NS}}}title", {"id": f"{element_id}-title"})
    title_element.text = title
    root.insert(0, title_element)
    return ET.tostring(root, encoding="unicode")


def _figure_svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with rc_context(_RC):
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None})
    return buffer.getvalue()


def sankey_svg(report: dict, element_id: str = "flows-sankey") -> str | None:
    """Statutory referrers -> offers -> outcomes, current period, published flows only."""
    from sankey_mpl import render_sankey

    refs = {r["key"]: r["name"] for r in report["referrers"]}
    units = {u["key"]: u["name"] for u in report["units"]}
    links: list[dict] = []
    for cell in report["flow_matrix"]["cells"]:
        if isinstance(cell["current"], int) and cell["current"] > 0:
            links.append({"from": f"r{cell['referrer']}", "to": f"u{cell['unit']}",
                          "flow": cell["current"]})
    for funnel in report["funnel"]:
        if funnel["unit"] == "*":
            continue
        for outcome in OUTCOME_COLOURS:
            value = funnel[outcome]["current"]
            if isinstance(value, int) and value > 0:
                links.append({"from": f"u{funnel['unit']}", "to": f"o{outcome}", "flow": value})
    # A first column "all referrals" makes every column reachable from one node, which
    # the layout needs; its flow to each team is the sum of that team's drawn flows.
    per_ref: dict[str, int] = {}
    for link in links:
        if link["from"][0] == "r":
            per_ref[link["from"]] = per_ref.get(link["from"], 0) + link["flow"]
    links = [{"from": "all", "to": k, "flow": v} for k, v in per_ref.items()] + links
    reachable, frontier = {"all"}, ["all"]
    while frontier:
        node = frontier.pop()
        for link in links:
            if link["from"] == node and link["to"] not in reachable:
                reachable.add(link["to"])
                frontier.append(link["to"])
    links = [link for link in links if link["from"] in reachable]
    if len(links) <= len(per_ref):
        return None

    def node_label(key: str) -> str:
        if key == "all":
            return "All referrals"
        kind, rest = key[0], key[1:]
        name = {"r": refs, "u": units}.get(kind, {}).get(rest) or OUTCOME_LABELS.get(rest, rest)
        if kind == "u" and " (" in name:
            name = name.split(" (")[0]  # the offer's name; the organisation is in the table
        return name if len(name) <= 34 else name[:32] + "…"

    nodes = {}
    for link in links:
        for key in (link["from"], link["to"]):
            colour = (GREY if key == "all" else DARK_BLUE if key[0] == "r" else BLUE if key[0] == "u"
                      else OUTCOME_COLOURS.get(key[1:], GREY))
            nodes[key] = {"label": node_label(key), "color": colour}
    height = max(280, 34 * max(sum(1 for k in nodes if k[0] == c) for c in "ruo"))
    config = {"width_px": 1000, "height_px": height, "label_font_size_px": 12,
              "label_side_mode": "left", "label_gutter_px": 90,
              "label_line_height_px": 15, "n_strips": 12, "link_alpha": 0.45,
              "node_width_px": 12, "node_gap_px": 10, "min_label_height_px": 4,
              "background_color": "#ffffff"}
    try:
        result = render_sankey(nodes, links, config)
    except ValueError:
        return None
    with rc_context(_RC):
        svg = _figure_svg(result.figure)
    return clean_svg(svg, "Referrals from statutory teams to community offers and their "
                          "outcomes this period (the table of flows has the same figures)",
                     element_id)


def _bar_figure(width: float, height: float) -> tuple[Figure, object]:
    figure = Figure(figsize=(width, height), dpi=72, facecolor="#ffffff")
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(labelsize=10)
    return figure, axes


def times_svg(report: dict, element_id: str = "flows-times") -> str | None:
    """Median and 90th percentile working days to a decision per offer (published only)."""
    units = {u["key"]: u["name"] for u in report["units"]}
    units["*"] = "All offers"
    rows = [(units.get(t["unit"], t["unit"]), t["decision_days"]["median"]["current"],
             t["decision_days"]["p90"]["current"]) for t in report["times"]]
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return None
    with rc_context(_RC):
        figure, axes = _bar_figure(7.5, 0.5 + 0.45 * len(rows) * 2)
        positions = range(len(rows))
        labels = [r[0] if len(r[0]) <= 40 else r[0][:38] + "…" for r in rows]
        axes.barh([p + 0.2 for p in positions], [r[2] for r in rows], height=0.38,
                  color=PALE_GREY, label="90th percentile")
        axes.barh([p - 0.2 for p in positions], [r[1] for r in rows], height=0.38, color=BLUE,
                  label="Median")
        axes.set_yticks(list(positions), labels)
        axes.invert_yaxis()
        axes.set_xlabel("Working days from sending to decision")
        axes.legend(loc="lower right", fontsize=9, frameon=False)
        figure.tight_layout()
        svg = _figure_svg(figure)
    return clean_svg(svg, "Working days from sending to a decision, median and 90th "
                          "percentile per offer (see the times table)", element_id)


def trend_svg(report: dict, element_id: str = "flows-trend") -> str | None:
    """Referrals sent per month, this period against the previous one (published only)."""
    current, previous = report["trend"]["current"], report["trend"]["previous"]
    if not current:
        return None

    def value(point: dict) -> float:
        return point["value"] if isinstance(point["value"], int) else 0

    with rc_context(_RC):
        figure, axes = _bar_figure(7.5, 2.8)
        n = max(len(current), len(previous))
        xs = list(range(n))
        axes.bar([x - 0.2 for x in xs[: len(previous)]], [value(p) for p in previous],
                 width=0.38, color=PALE_GREY, label="Previous period")
        axes.bar([x + 0.2 for x in xs[: len(current)]], [value(p) for p in current],
                 width=0.38, color=BLUE, label="This period")
        labels = []
        for i in xs:
            parts = [p["month"] for p in (current[i:i + 1] + previous[i:i + 1])]
            labels.append(" / ".join(parts))
        axes.set_xticks(xs, labels)
        for i, point in enumerate(current):
            if not isinstance(point["value"], int):
                axes.annotate(point["value"], (i + 0.2, 0), ha="center", va="bottom",
                              fontsize=9)
        for i, point in enumerate(previous):
            if not isinstance(point["value"], int):
                axes.annotate(point["value"], (i - 0.2, 0), ha="center", va="bottom",
                              fontsize=9)
        axes.set_ylabel("Referrals sent")
        axes.legend(loc="upper left", fontsize=9, frameon=False)
        figure.tight_layout()
        svg = _figure_svg(figure)
    return clean_svg(svg, "Referrals sent per month, this period and the previous period "
                          "(see the trend table)", element_id)


def all_charts(report: dict) -> dict[str, str | None]:
    return {"sankey": sankey_svg(report), "times": times_svg(report),
            "trend": trend_svg(report)}
