"""Docs links resolve: every relative link and image in README.md, docs/*.md and docs/results/*.md, and its #anchor."""

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
RESULTS_SUMMARY_MAX_BYTES = 30 * 1024
MD = MarkdownIt("commonmark").enable("table")


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (letters, digits, ``_`` and ``-`` kept), spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors_and_links(text: str) -> tuple[set[str], list[str]]:
    """The anchors a Markdown page defines (headings, numbered like GitHub when repeated; ``<a id>``) and its link targets.
    Code spans and fenced blocks hold no links."""
    tokens = MD.parse(text)
    anchors, links, seen = set(), [], {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            s = slug("".join(c.content for c in tokens[i + 1].children if c.type in ("text", "code_inline")))
            anchors.add(f"{s}-{seen[s]}" if s in seen else s)
            seen[s] = seen.get(s, 0) + 1
        if tok.type in ("inline", "html_block"):
            anchors.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", tok.content))
        for child in tok.children or []:
            if child.type == "link_open":
                links.append(child.attrs["href"])
            elif child.type == "image":
                links.append(child.attrs["src"])
    return anchors, links


def broken_links(pages: list[Path], root: Path = ROOT) -> list[str]:
    """``page: target: why`` for each relative link whose file or anchor does not exist."""
    parsed, bad = {}, []

    def parse(p: Path):
        if p not in parsed:
            parsed[p] = anchors_and_links(p.read_text())
        return parsed[p]

    for page in pages:
        for href in parse(page)[1]:
            if re.match(r"[a-z][a-z0-9+.-]*:", href, flags=re.I):  # http:, https:, mailto:
                continue
            path, _, anchor = href.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                bad.append(f"{page.relative_to(root)}: {href}: no such file")
            elif anchor and target.suffix == ".md" and anchor not in parse(target)[0]:
                bad.append(f"{page.relative_to(root)}: {href}: no such anchor")
    return bad


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "results").glob("*.md"))]


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    pages = doc_pages()
    assert ROOT / "docs" / "results" / "baselines.md" in pages and len(pages) > 15
    assert broken_links(pages) == []


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Run (issue #20)\n\n## Run (issue #20)\n\n<a id=\"here\"></a>\n")
    (tmp_path / "b.md").write_text(
        "# B\n\n[ok](a.md#run-issue-20) [again](a.md#run-issue-20-1) [id](a.md#here) [self](#b) [web](https://x.org/#no)\n"
        "[no anchor](a.md#run) [no file](c.md) ![no image](figures/x.png)\n\n`[in code](d.md)`\n\n```\n[fenced](e.md)\n```\n")
    bad = broken_links([tmp_path / "b.md"], root=tmp_path)
    assert [b.split(": ")[1] for b in bad] == ["a.md#run", "c.md", "figures/x.png"]


@pytest.mark.parametrize("heading, anchor", [
    ("Determinism (issue #20)", "determinism-issue-20"),
    ("`--preset auto`", "--preset-auto"),
    ("Tux-12: CVS ± attention, M-CVS", "tux-12-cvs--attention-m-cvs"),
    ("digits10: baselines (real features)", "digits10-baselines-real-features"),
])
def test_anchors_are_githubs(heading, anchor):
    assert slug(heading) == anchor


def test_results_is_a_summary_that_links_every_detail_page():
    summary = (ROOT / "docs" / "results.md").read_text()
    assert len(summary.encode()) <= RESULTS_SUMMARY_MAX_BYTES
    assert summary.count("<!-- summary:real -->") == 1 and summary.count("<!-- /summary:real -->") == 1
    assert summary.index("<!-- summary:real -->") < summary.index("<!-- /summary:real -->")
    assert not re.search(r"^<!-- (experiment|baselines)", summary, flags=re.M)  # the detail lives in the pages
    _, links = anchors_and_links(summary)
    for page in sorted((ROOT / "docs" / "results").glob("*.md")):
        assert f"results/{page.name}" in links, f"docs/results.md does not link {page.name}"
        names = re.findall(r"<!-- experiment:([\w.-]+) -->", page.read_text())
        assert names in ([], [page.stem]), f"{page.name} holds the blocks of {names}"
