"""The static report (emqlib/harness/site.py), built from a small hand-made results/ folder: the index lists
every notebook and every claim, the pages load nothing from the network, a widget is drawn from its saved
state, and a rebuild replaces only a site it built."""
from __future__ import annotations

import base64
import re

import nbformat
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from emqlib.harness import claims, site

# an 8x8 PNG, white
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFUlEQVR4nGP8//8/AzbAhFV00EoAAFbUAw037MyjAAAAAElFTkSuQmCC")
REMOTE = re.compile(r"^(https?:)?//")
CLAIMS = pd.DataFrame([
    # claim_id, status, n_seeds, ci_low, ci_high, fragile, reason, notebook
    ("X1", "reproduced", "3", "0.5", "1.5", "False", "", "01_alpha"),
    ("X2", "partial", "2", "-0.25", "2.0", "True", "", "01_alpha"),
    ("X3", "not reproduced", "1", "", "", "True", "the mean is on the wrong side of the threshold", "02_beta"),
    ("X4", "not run", "0", "", "", "", "needs a GPU", ""),
    ("X5", "invalid", "3", "0.1", "0.9", "", "run 3 collapsed at 2 bits", "02_beta"),
    ("X6", "not comparable", "0", "", "", "", "the paper's counting is not given", ""),
], columns=["claim_id", "status", "n_seeds", "ci_low", "ci_high", "fragile", "reason", "notebook"]).assign(
    claim=lambda f: "claim text of " + f.claim_id, source="paper", paper_value=lambda f: "paper " + f.claim_id,
    protocol=["paper", "strongest control", "", "", "", ""], our_value=lambda f: "ours " + f.claim_id, our_setting="",
    criterion="", seeds_to_reproduce="")[claims.COLUMNS]  # the columns of results/claims.csv


def widget_state() -> dict:
    """What JupyterLab saves for a VBox of an HTML line, a checkbox and an image."""
    def model(name, state, **extra):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                "state": state, **extra}
    return {"version_major": 2, "version_minor": 0, "state": {
        "box": model("VBoxModel", {"children": ["IPY_MODEL_text", "IPY_MODEL_switch", "IPY_MODEL_image"]}),
        "text": model("HTMLModel", {"value": "<b>2 bits</b>: accuracy 81%"}),
        "switch": model("CheckboxModel", {"description": "correction", "value": True}),
        "image": model("ImageModel", {"format": "png"},
                       buffers=[{"path": ["value"], "encoding": "base64", "data": base64.b64encode(PNG).decode()}])}}


def write_results(root):
    """results/ with two executed notebooks (the first with a figure, a widget and a "What we found" cell,
    the second with math), claims.csv; figures/ with the overview figure and another."""
    (root / "results" / "notebooks").mkdir(parents=True)
    figure = new_output("display_data", data={"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"})
    widget = new_output("execute_result", execution_count=2, data={
        site.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox(...)"})
    alpha = new_notebook(cells=[
        new_markdown_cell("Some words before any heading."), new_markdown_cell("# 01 · Alpha study\n\nWhat it tests."),
        new_code_cell("plot()", execution_count=1, outputs=[figure]), new_code_cell("explorer()", execution_count=2,
                                                                                   outputs=[widget]),
        new_markdown_cell("## What we found\n\nThe **alpha** effect holds at 3 seeds.")])
    alpha.metadata["widgets"] = {site.WIDGET_STATE: widget_state()}
    beta = new_notebook(cells=[new_markdown_cell("# 02 · Beta study\n\nThe angle $\\theta$ is small."),
                               new_markdown_cell("## How to read the result\n\nNo findings cell here.")])
    nbformat.write(alpha, root / "results" / "notebooks" / "01_alpha.ipynb")
    nbformat.write(beta, root / "results" / "notebooks" / "02_beta.ipynb")
    CLAIMS.to_csv(root / "results" / "claims.csv", index=False)
    (root / "figures").mkdir()
    for name in (site.OVERVIEW_FIGURE, "alpha.png", site.SCREENSHOTS[0]):
        (root / "figures" / name).write_bytes(PNG)
    return root / "results", root / "figures"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    results, figures = write_results(root)
    written = site.build(results, figures, root / "site")
    return root / "site", written


def page(path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def remote_references(soup: BeautifulSoup) -> list[str]:
    """Scripts, stylesheets and images the page would fetch from elsewhere, and CSS imports."""
    found = [tag.get("src") or tag.get("href") or "" for tag in soup.find_all(["script", "link", "img"])]
    found += re.findall(r"@import\s+(?:url\()?['\"]?([^'\")\s;]+)", " ".join(s.get_text() for s in soup.find_all("style")))
    return [ref for ref in found if REMOTE.match(ref)]


def test_the_index_lists_every_notebook_in_order_with_its_title_and_findings(built):
    folder, written = built
    assert written == {"notebooks": 2, "claims": 6, "figures": 2}
    items = page(folder / "index.html").select("ol.notebooks > li")
    assert [li.select_one("a.title")["href"] for li in items] == ["notebooks/01_alpha.html", "notebooks/02_beta.html"]
    assert [li.select_one("a.title").get_text() for li in items] == ["01 · Alpha study", "02 · Beta study"]
    assert "The alpha effect holds at 3 seeds." in items[0].select_one(".found").get_text(" ", strip=True).replace(
        " .", ".")
    assert items[0].select_one(".found strong").get_text() == "alpha"  # the markdown is rendered
    assert items[1].select_one(".found") is None  # "How to read the result" is not a findings cell
    assert all((folder / li.select_one("a.title")["href"]).exists() for li in items)


def test_the_index_lists_every_claim_with_the_ungraded_apart(built):
    folder, _ = built
    soup = page(folder / "index.html")

    def rows(table_id):
        return [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in soup.select(f"#{table_id} tbody tr")]

    graded, ungraded = rows("findings"), rows("ungraded")
    assert [r[0] for r in graded] == ["X1", "X2", "X3"] and [r[0] for r in ungraded] == ["X4", "X5", "X6"]
    assert graded[0] == ["X1", "claim text of X1", "paper", "paper X1", "ours X1", "reproduced", "3", "[0.50, 1.50]",
                         "no", ""]
    assert graded[1][2] == "strongest control" and graded[1][5:] == ["partial", "2", "[-0.25, 2.00]", "yes", ""]
    assert graded[2][5:] == ["not reproduced", "1", "", "yes", "the mean is on the wrong side of the threshold"]
    assert ungraded[1] == ["X5", "claim text of X5", "paper X5", "invalid", "run 3 collapsed at 2 bits"]
    assert ungraded[2] == ["X6", "claim text of X6", "paper X6", "not comparable", "the paper's counting is not given"]
    # statuses are told apart by class (colour), each claim id links to its notebook's page
    classes = [tr.select_one(".status")["class"] for tr in soup.select("table.claims tbody tr")]
    assert len({c[-1] for c in classes}) == 6
    assert soup.select_one("#findings a[href='notebooks/02_beta.html']").get_text() == "X3"
    assert soup.select_one("#ungraded tbody tr").find("a") is None  # X4 names no notebook


def test_figures_are_copied_and_the_overview_shown(built):
    folder, _ = built
    soup = page(folder / "index.html")
    assert soup.select_one("figure.overview img")["src"] == f"figures/{site.OVERVIEW_FIGURE}"
    shown = sorted(img["src"] for img in soup.select(".gallery img"))
    assert shown == ["figures/alpha.png", f"figures/{site.OVERVIEW_FIGURE}"]  # the site's own screenshot left out
    assert all((folder / src).read_bytes() == PNG for src in shown)


def test_the_overview_figure_is_skipped_when_there_is_none(tmp_path):
    results, figures = write_results(tmp_path)
    (figures / site.OVERVIEW_FIGURE).unlink()
    site.build(results, figures, tmp_path / "site")
    soup = page(tmp_path / "site" / "index.html")
    assert soup.select_one("figure.overview") is None and soup.select("#findings tbody tr")


def test_pages_fetch_nothing_from_the_network_except_mathjax_for_math(built):
    folder, _ = built
    index, alpha, beta = (page(folder / p) for p in ("index.html", "notebooks/01_alpha.html", "notebooks/02_beta.html"))
    assert remote_references(index) == [] and remote_references(alpha) == []
    assert [r for r in remote_references(beta) if "mathjax" not in r.lower()] == []
    assert remote_references(beta), "the page with math loads MathJax (the documented exception)"
    assert "02_beta.ipynb (offline it shows as TeX)" in index.get_text(" ", strip=True)
    # the figure output is inside the page, and the page links back to the index
    assert any(img["src"].startswith("data:image/png;base64,") for img in alpha.select(".jp-OutputArea-output img"))
    assert alpha.select_one("nav.site-nav a")["href"] == "../index.html"


def test_a_widget_is_drawn_from_the_state_saved_with_the_notebook(built):
    folder, _ = built
    soup = page(folder / "notebooks" / "01_alpha.html")
    widget = soup.select_one(".static-widget")
    assert "2 bits: accuracy 81%" in widget.get_text(" ", strip=True).replace(" :", ":")
    assert "correction on" in widget.get_text(" ", strip=True)
    assert widget.find("img")["src"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert site.WIDGET_STATE not in str(soup) and site.WIDGET_VIEW not in str(soup)


def test_a_rebuild_replaces_the_site_whole(tmp_path):
    results, figures = write_results(tmp_path)
    out = tmp_path / "site"
    site.build(results, figures, out)
    (results / "notebooks" / "02_beta.ipynb").unlink()
    site.build(results, figures, out)
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["01_alpha.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "results", "site"]  # no staging folder left


def test_a_folder_the_site_did_not_build_is_never_replaced(tmp_path):
    results, figures = write_results(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(site.SiteError, match="is not a site built by `make report`"):
        site.build(results, figures, mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_missing_or_outdated_results_are_one_clear_error(tmp_path, monkeypatch, capsys):
    results, figures = write_results(tmp_path)
    CLAIMS.drop(columns="fragile").to_csv(results / "claims.csv", index=False)
    with pytest.raises(site.SiteError, match="has no column fragile: .* rerun `make reproduce`"):
        site.build(results, figures, tmp_path / "site")
    for notebook in (results / "notebooks").iterdir():
        notebook.unlink()
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(results))
    monkeypatch.setenv("EMQ_FIGURES_DIR", str(figures))
    assert site.main(["--out", str(tmp_path / "site")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no executed notebooks" in error and "run `make reproduce` first" in error
    assert not (tmp_path / "site").exists()


def test_an_unreadable_notebook_names_its_file(tmp_path):
    results, figures = write_results(tmp_path)
    (results / "notebooks" / "02_beta.ipynb").write_text("{not json")
    with pytest.raises(site.SiteError, match="02_beta.ipynb is not a readable notebook"):
        site.build(results, figures, tmp_path / "site")


def test_without_claims_the_index_says_what_to_run(tmp_path):
    results, figures = write_results(tmp_path)
    (results / "claims.csv").unlink()
    written = site.build(results, figures, tmp_path / "site")
    soup = page(tmp_path / "site" / "index.html")
    assert written["claims"] == 0 and soup.select("table.claims") == []
    assert "no results/claims.csv yet: run make reproduce" in soup.get_text(" ", strip=True)
    assert len(soup.select("ol.notebooks > li")) == 2
