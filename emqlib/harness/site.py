"""The static report (``make report``, ``python -m emqlib.harness.site``): an HTML site a reviewer opens in
a browser without installing anything, built from what ``make reproduce`` wrote.

- ``index.html``: what the project is, what produced the results (``results/provenance.json``), the
  findings of ``results/claims.csv`` (the graded claims in one table, the claims without a grade, not run
  or invalid, apart with their reasons), the overview figure ``figures/claims_forest.png`` when there is
  one, the executed notebooks in order with their title and "What we found" text, and every figure;
- ``notebooks/NN_name.html``: each notebook of ``results/notebooks/`` with its outputs, by nbconvert's
  ``lab`` template. Output figures are data URIs inside the page. What the template loads from CDNs is
  left out: require.js and mermaid (no output here uses them), the widget manager (a widget is drawn as
  a static snapshot of the state saved with the notebook) and MathJax, kept only on a page whose
  markdown has math, which then needs the internet to typeset it;
- ``figures/``: copies of ``figures/*.png``.

The site is written to a temporary folder beside ``--out`` and then swapped in whole, so an interrupted
build leaves the previous site as it was; a folder at ``--out`` that this module did not build is never
replaced.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pandas as pd

from . import grading, paths, plots

GRADED = ("reproduced", "partial", "not reproduced")  # every other status (not run, invalid) is listed apart
CLAIM_COLUMNS = ("claim_id", "claim", "protocol", "paper_value", "our_value", "status", "n_seeds", "ci_low", "ci_high", "fragile",
                 "reason", "notebook")
OVERVIEW_FIGURE = "claims_forest.png"
SCREENSHOTS = ("site_index.png", "site_notebook.png")  # scripts/site_check.py's pictures of the site, not shown in it
MARKER = ".emqlib-site"  # in every folder this module builds: the only kind of folder it replaces
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

HEADING = re.compile(r"^#+\s+(.+?)\s*#*\s*$", re.MULTILINE)
FINDINGS_HEADING = re.compile(r"#+\s*what we found\b[^\n]*(\n|$)", re.IGNORECASE)
MATH = re.compile(r"\$[^$\n]+\$|\\\(|\\\[|\\begin\{")

# nbconvert's lab page without the scripts it fetches from CDNs (see the module docstring)
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- if resources.site_math -%}{{ super() }}{%- endif -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.site_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.site_nav }}{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.site_nav }}{{ super() }}{%- endblock body_footer -%}
"""

def tint(colour: str, share: float = 0.14) -> str:
    """``colour`` (#rrggbb) mixed with white, ``share`` of it kept: a badge's background."""
    channels = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - share * (255 - c)):02x}" for c in channels)


# the figures' status colours (one palette), each as text on a light tint of itself
STATUS_COLOURS = {status: (colour, tint(colour)) for status, colour in plots.STATUS_COLORS.items()}
OTHER_STATUS = ("#57606a", "#eaeef2")

NAV_CSS = """
.site-nav { display: flex; gap: 1.5em; align-items: baseline; padding: 0.6em 1em; margin: 0 0 1em 0;
  background: #f6f8fa; border-bottom: 1px solid #d0d7de; font: 14px system-ui, sans-serif; }
.site-nav a { color: #0969da; text-decoration: none; } .site-nav a:hover { text-decoration: underline; }
.site-nav .here { color: #57606a; margin-left: auto; }
.static-widget { border: 1px dashed #d0d7de; padding: 0.6em; }
.static-widget img { max-width: 100%; }
.static-widget-note { color: #57606a; font-size: 90%; margin: 0 0 0.5em 0; }
"""


def status_css() -> str:
    rules = [f".status-{slug(s)} {{ color: {fg}; background: {bg}; border-color: {fg}; }}\n"
             f"tr.row-{slug(s)} td:first-child {{ border-left: 4px solid {fg}; }}"
             for s, (fg, bg) in STATUS_COLOURS.items()]
    fg, bg = OTHER_STATUS
    return "\n".join(rules) + f"\n.status-other {{ color: {fg}; background: {bg}; border-color: {fg}; }}"


INDEX_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0; }
main { max-width: 1400px; margin: 0 auto; padding: 1em 2em 3em 2em; }
h1 { font-size: 1.8em; margin: 0.4em 0; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.6em; }
a { color: #0969da; }
.provenance, .note { color: #57606a; }
table.claims { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 0.8em 0; }
table.claims th { position: sticky; top: 0; background: #f6f8fa; text-align: left; }
table.claims th, table.claims td { border: 1px solid #d0d7de; padding: 0.35em 0.5em; vertical-align: top; }
table.claims tbody tr:nth-child(even) { background: #fafbfc; }
table.claims td.num { white-space: nowrap; text-align: right; }
table.claims td.claim { min-width: 16em; } table.claims td.value { min-width: 18em; }
.status { display: inline-block; white-space: nowrap; border: 1px solid; border-radius: 1em; padding: 0 0.6em;
  font-weight: 600; font-size: 12.5px; }
.fragile { color: #9a6700; font-weight: 600; }
.summary .status { margin-right: 0.3em; }
figure.overview img { max-width: 100%; border: 1px solid #d0d7de; }
ol.notebooks > li { margin-bottom: 1em; } ol.notebooks .title { font-weight: 600; font-size: 1.05em; }
.found { border-left: 3px solid #d0d7de; padding-left: 0.8em; margin-top: 0.3em; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 1em; }
.gallery figure { margin: 0; border: 1px solid #d0d7de; padding: 0.5em; }
.gallery img { width: 100%; height: 200px; object-fit: contain; }
.gallery figcaption { font-size: 13px; text-align: center; }
"""


class SiteError(RuntimeError):
    """The site cannot be built; the message says why and what to do."""


def slug(status: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", status.lower()).strip("-")


def markdown(source: str) -> str:
    """Markdown as HTML, by the renderer nbconvert uses for the notebooks' own markdown cells."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(source)


# ---------------------------------------------------------------- notebooks

def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises JSON, validation and OS errors alike
        raise SiteError(f"{path} is not a readable notebook ({error}): rerun `make reproduce`") from error


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first markdown heading of the notebook (``fallback`` when it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (found := HEADING.search(cell.source)):
            return found[1]
    return fallback


def findings(nb: nbformat.NotebookNode) -> str | None:
    """The markdown of the notebook's "What we found" cell (the last markdown cell headed so), heading removed."""
    for cell in reversed(nb.cells):
        source = cell.source.lstrip()
        if cell.cell_type == "markdown" and (found := FINDINGS_HEADING.match(source)):
            return source[found.end():].strip()
    return None


def has_math(nb: nbformat.NotebookNode) -> bool:
    return any(cell.cell_type == "markdown" and MATH.search(cell.source) for cell in nb.cells)


def widget_snapshot(models: dict, model_id: str) -> str:
    """A widget as its saved state shows it (the ipywidgets state JupyterLab stores in the notebook):
    a box lays out its children, HTML and labels show their text, an image its picture, a control its
    description and value."""
    model = models.get(model_id)
    if model is None:
        return ""
    state, name = model["state"], model["model_name"]
    if "children" in state:
        direction = "row" if name == "HBoxModel" else "column"
        children = "".join(widget_snapshot(models, child.removeprefix("IPY_MODEL_")) for child in state["children"])
        return f'<div style="display: flex; flex-direction: {direction}; gap: 0.8em">{children}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{state.get('value', '')}</div>"
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", [])
                     if b["path"] == ["value"] and b.get("encoding") == "base64"), None)
        kind = html.escape(state.get("format", "png"))
        return f'<img src="data:image/{kind};base64,{data}" alt="the widget\'s image">' if data else ""
    if "_options_labels" in state and state.get("index") is not None:
        value = state["_options_labels"][state["index"]]
    elif "value" in state:
        value = ("on" if state["value"] else "off") if isinstance(state["value"], bool) else state["value"]
    else:
        return ""
    return f"<div><b>{html.escape(state.get('description', ''))}</b> {html.escape(str(value))}</div>"


def static_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose widget outputs are static snapshots, without the saved widget state (which
    nbconvert would hand to a widget manager fetched from a CDN)."""
    nb = copy.deepcopy(nb)
    models = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).pop(WIDGET_VIEW, None)
            if view is None or not (snapshot := widget_snapshot(models, view["model_id"])):
                continue
            output["data"]["text/html"] = (
                '<div class="static-widget"><p class="static-widget-note">An interactive widget, shown as it was '
                "when the notebook was saved; open the notebook in JupyterLab (<code>make lab</code>) to use it.</p>"
                f"{snapshot}</div>")
    return nb


def nav(index: str, pages: list[tuple[str, str]], here: int) -> str:
    """The links above and below a notebook page: the index, the previous and the next notebook."""
    links = [f'<a href="{index}">&larr; Report index</a>']
    if here > 0:
        links.append(f'<a href="{pages[here - 1][0]}">previous: {html.escape(pages[here - 1][1])}</a>')
    if here + 1 < len(pages):
        links.append(f'<a href="{pages[here + 1][0]}">next: {html.escape(pages[here + 1][1])}</a>')
    links.append(f'<span class="here">{html.escape(pages[here][1])}</span>')
    return f'<nav class="site-nav">{"".join(links)}</nav>'


def notebook_page(nb: nbformat.NotebookNode, title: str, navigation: str) -> str:
    """One executed notebook as a self-contained HTML page (nbconvert's lab template, see the module docstring)."""
    from nbconvert import HTMLExporter

    nb = static_widgets(nb)
    nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="lab", raw_template=PAGE_TEMPLATE)
    body, _ = exporter.from_notebook_node(nb, resources={"site_math": has_math(nb), "site_nav": navigation,
                                                         "site_css": NAV_CSS})
    return body


# ---------------------------------------------------------------- the index

def read_claims(path: Path) -> pd.DataFrame | None:
    """``results/claims.csv`` (None when there is none), with the columns the index shows."""
    if not path.exists():
        return None
    try:
        claims = pd.read_csv(path, keep_default_na=False, dtype=str)
    except Exception as error:  # pandas raises parser, encoding and OS errors alike
        raise SiteError(f"{path} is not a readable CSV ({error}): rerun `make reproduce`") from error
    missing = [c for c in CLAIM_COLUMNS if c not in claims.columns]
    if missing:
        raise SiteError(f"{path} has no column {', '.join(missing)}: it is from another version; rerun `make reproduce`")
    return claims


def status_badge(status: str) -> str:
    kind = slug(status) if status in STATUS_COLOURS else "other"
    return f'<span class="status status-{kind}">{html.escape(status)}</span>'


def interval(low: str, high: str) -> str:
    return f"[{float(low):.2f}, {float(high):.2f}]" if low and high else ""


def claim_link(row, pages: dict[str, str]) -> str:
    """The claim id, linked to the page of the notebook that measures it."""
    cell = html.escape(row.claim_id)
    return f'<a href="{pages[row.notebook]}">{cell}</a>' if row.notebook in pages else cell


def claims_table(rows: pd.DataFrame, table_id: str, columns: list[tuple[str, str]], pages: dict[str, str]) -> str:
    """An HTML table of claims: ``columns`` is (header, field) pairs; the fields with their own format are
    claim_id, status, interval and fragile."""
    def cell(row, field: str) -> str:
        if field == "claim_id":
            return f"<td>{claim_link(row, pages)}</td>"
        if field == "status":
            return f"<td>{status_badge(row.status)}</td>"
        if field == "interval":
            return f'<td class="num">{interval(row.ci_low, row.ci_high)}</td>'
        if field == "fragile":
            return {"True": '<td class="fragile">yes</td>', "False": "<td>no</td>"}.get(row.fragile, "<td></td>")
        css = {"n_seeds": ' class="num"', "claim": ' class="claim"', "our_value": ' class="value"'}.get(field, "")
        return f"<td{css}>{html.escape(getattr(row, field))}</td>"

    head = "".join(f"<th>{html.escape(header)}</th>" for header, _ in columns)
    body = "\n".join(f'<tr class="row-{slug(row.status)}">' + "".join(cell(row, f) for _, f in columns) + "</tr>"
                     for row in rows.itertuples(index=False))
    return f'<table class="claims" id="{table_id}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def findings_section(claims: pd.DataFrame | None, figures: Path, pages: dict[str, str]) -> str:
    if claims is None:
        return ('<h2 id="findings">Findings</h2>'
                "<p>There is no <code>results/claims.csv</code> yet: run <code>make reproduce</code>.</p>")
    counts = claims.status.value_counts()
    summary = ", ".join(f"{counts[s]} {status_badge(s)}" for s in dict.fromkeys([*grading.STATUSES, *counts.index])
                        if s in counts)
    fragile = int((claims.fragile == "True").sum())
    overview = (f'<figure class="overview"><img src="figures/{OVERVIEW_FIGURE}" alt="every claim\'s measurement '
                'against its threshold"></figure>' if (figures / OVERVIEW_FIGURE).exists() else "")
    graded = claims[claims.status.isin(GRADED)]
    apart = claims[~claims.status.isin(GRADED)]
    parts = [
        '<h2 id="findings">Findings</h2>',
        f'<p class="summary">{len(claims)} claims of the papers: {summary}; {fragile} of the graded statuses are '
        '<span class="fragile">fragile</span>. A claim id links to the notebook that measures it.</p>',
        markdown(grading.RULES + " The rule and threshold of each claim are in the `criterion` column of "
                 "`results/claims.csv`."),
        overview,
        f"<h3>Graded claims ({len(graded)})</h3>",
        claims_table(graded, "findings", [("claim", "claim_id"), ("claim (paper)", "claim"),
                                          ("compared as", "protocol"), ("paper value", "paper_value"), ("our value", "our_value"),
                                          ("status", "status"), ("seeds", "n_seeds"), ("95% interval", "interval"),
                                          ("fragile", "fragile"), ("how it misses", "reason")], pages),
    ]
    if len(apart):
        parts += [f"<h3>Claims without a grade ({len(apart)}): invalid, not comparable or not run</h3>",
                  claims_table(apart, "ungraded", [("claim", "claim_id"), ("claim (paper)", "claim"),
                                                   ("paper value", "paper_value"), ("status", "status"),
                                                   ("why", "reason")], pages)]
    return "\n".join(parts)


def project_paragraph() -> str:
    """The README's first paragraph (what the project is), as HTML."""
    readme = paths.ROOT / "README.md"
    if not readme.exists():
        return ""
    blocks = [b.strip() for b in readme.read_text().split("\n\n")]
    first = next((b for b in blocks if b and not b.startswith(("#", "```"))), "")
    return markdown(first)


def provenance_line(results: Path) -> str:
    path = results / "provenance.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return ('<p class="provenance">No <code>results/provenance.json</code>: '
                "what produced these results is unrecorded.</p>")
    commit = str(record.get("commit") or "unknown")[:10]
    changes = " with uncommitted changes" if record.get("uncommitted_changes") else ""
    return (f'<p class="provenance">Results of <code>make reproduce PROFILE={html.escape(str(record.get("profile")))}'
            f'</code> at commit <code>{html.escape(commit)}</code>{changes}, finished '
            f'{html.escape(str(record.get("finished")))} (status {html.escape(str(record.get("status")))}), '
            f'on {html.escape(str(record.get("platform", "an unrecorded machine")))}.</p>')


def notebooks_section(entries: list[dict]) -> str:
    items = []
    for entry in entries:
        found = (f'<div class="found"><b>What we found.</b> {markdown(entry["findings"])}</div>'
                 if entry["findings"] else "")
        items.append(f'<li><a class="title" href="{entry["href"]}">{html.escape(entry["title"])}</a> '
                     f'<span class="note">({html.escape(entry["file"])})</span>{found}</li>')
    return ('<h2 id="notebooks">Notebooks</h2><p>As executed by <code>make reproduce</code>, with their outputs.</p>'
            f'<ol class="notebooks">{"".join(items)}</ol>')


def figures_section(names: list[str]) -> str:
    if not names:
        return ""
    cards = "".join(f'<figure><a href="figures/{n}"><img src="figures/{n}" alt="{html.escape(n)}"></a>'
                    f"<figcaption>{html.escape(n)}</figcaption></figure>" for n in names)
    return ('<h2 id="figures">Figures</h2><p>Every figure of <code>figures/</code>; click for full size.</p>'
            f'<div class="gallery">{cards}</div>')


def offline_note(entries: list[dict]) -> str:
    with_math = [e["file"] for e in entries if e["math"]]
    if not with_math:
        return "every page works offline."
    return ("every page works offline, but MathJax, fetched from the internet, typesets the math of "
            f"{', '.join(map(html.escape, with_math))} (offline it shows as TeX).")


def index_page(results: Path, figures: Path, claims: pd.DataFrame | None, entries: list[dict],
               figure_names: list[str]) -> str:
    pages = {e["stem"]: e["href"] for e in entries}
    body = "\n".join([
        "<h1>emqlib: the reproduction report</h1>", project_paragraph(), provenance_line(results),
        '<p class="note">On this page: <a href="#findings">findings</a> &middot; <a href="#notebooks">notebooks</a>'
        ' &middot; <a href="#figures">figures</a>. Built by <code>make report</code> from <code>results/</code> and '
        f"<code>figures/</code>; {offline_note(entries)}</p>",
        findings_section(claims, figures, pages), notebooks_section(entries), figures_section(figure_names)])
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>emqlib: reproduction report</title><style>{INDEX_CSS}{status_css()}</style></head>\n"
            f"<body><main>\n{body}\n</main></body></html>\n")


# ---------------------------------------------------------------- the site

def write_site(results: Path, figures: Path, folder: Path) -> dict:
    """Every page of the site into the empty ``folder``; returns what was written."""
    sources = sorted((results / "notebooks").glob("*.ipynb"))
    if not sources:
        raise SiteError(f"no executed notebooks in {results / 'notebooks'}: run `make reproduce` first")
    claims = read_claims(results / "claims.csv")
    notebooks = [read_notebook(p) for p in sources]
    entries = [{"stem": p.stem, "file": p.name, "href": f"notebooks/{p.stem}.html", "title": notebook_title(nb, p.stem),
                "findings": findings(nb), "math": has_math(nb)} for p, nb in zip(sources, notebooks)]
    (folder / "notebooks").mkdir()
    pages = [(f"{e['stem']}.html", e["title"]) for e in entries]
    for i, (nb, entry) in enumerate(zip(notebooks, entries)):
        page = notebook_page(nb, entry["title"], nav("../index.html", pages, i))
        (folder / entry["href"]).write_text(page, encoding="utf-8")
    (folder / "figures").mkdir()
    figure_names = sorted(p.name for p in figures.glob("*.png") if p.name not in SCREENSHOTS)
    for name in figure_names:
        shutil.copyfile(figures / name, folder / "figures" / name)
    (folder / "index.html").write_text(index_page(results, figures, claims, entries, figure_names), encoding="utf-8")
    (folder / MARKER).write_text("built by python -m emqlib.harness.site; replaced whole by the next build\n")
    return {"notebooks": len(entries), "claims": 0 if claims is None else len(claims), "figures": len(figure_names)}


def build(results: Path, figures: Path, out: Path) -> dict:
    """The site at ``out``, built beside it and swapped in whole (see the module docstring)."""
    out = out.absolute()
    if out.exists() and not (out.is_dir() and ((out / MARKER).exists() or not any(out.iterdir()))):
        raise SiteError(f"{out} exists and is not a site built by `make report`: remove it or pass another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-building-", dir=out.parent))
    try:
        written = write_site(results, figures, staging)
        staging.chmod(0o755)  # mkdtemp's folder is private; a site is for reading
        previous = out.with_name(f".{out.name}-previous")
        if previous.exists():  # left by a build interrupted between the two renames below
            shutil.rmtree(previous)
        if out.exists():
            out.rename(previous)
        staging.rename(out)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=paths.ROOT / "site", help="folder of the site (default: site/)")
    args = parser.parse_args(argv)
    try:
        written = build(paths.results_dir(), paths.figures_dir(), args.out)
    except SiteError as error:
        print(f"make report: {error}", file=sys.stderr)
        return 1
    print(f"{written['notebooks']} notebook pages, {written['claims']} claims, {written['figures']} figures: "
          f"{args.out.absolute() / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
