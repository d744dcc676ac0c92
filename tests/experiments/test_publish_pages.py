"""`python -m experiments publish NAME` writes the page docs/results/NAME.md; the summary docs/results.md is never edited."""

import pytest

from cvs_tf.utils.cli import run_cli
from experiments.__main__ import main, page_body, publish_section

SUMMARY = "# Results\n\n| experiment | page |\n|---|---|\n| Table 8 | [table8](results/table8.md) |\n"
RESULT = ("## Table 8 — synthetic\n\n- command: `python -m experiments run table8`\n\n### XMedia\n\n#### Claims\n\n"
          "![table8](table8.png)\n\n_Wall time of this experiment: 1.5 min._\n")


@pytest.fixture
def repo(tmp_path):
    """docs/results.md (linking table8 only), docs/results/ with another page, and results/table8.{md,png}."""
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results.md").write_text(SUMMARY)
    (tmp_path / "docs" / "results" / "table9.md").write_text("table 9 page\n")
    res = tmp_path / "results"
    res.mkdir()
    (res / "table8.md").write_text(RESULT)
    (res / "table8.png").write_bytes(b"\x89PNG fake")
    return tmp_path


def _publish(repo, *names):
    return run_cli(main, ["publish", *names, "--results", str(repo / "results"), "--pages", str(repo / "docs" / "results")])


def test_publish_writes_the_experiment_page_and_nothing_else(repo, capsys):
    assert _publish(repo, "table8") == 0
    page = (repo / "docs" / "results" / "table8.md").read_text()
    assert page.startswith("<!-- experiment:table8 -->\n<!-- run: full -->\n# Table 8 — synthetic\n")
    assert "\n## XMedia\n" in page and "\n### Claims\n" in page                  # one level up: the title is the page's #
    assert "- command: `python -m experiments run table8`" in page and "_Wall time of this experiment: 1.5 min._" in page
    assert "](../figures/table8.png)" in page
    assert (repo / "docs" / "figures" / "table8.png").read_bytes() == b"\x89PNG fake"
    assert page.endswith("<!-- /experiment:table8 -->\n\nBack to the [results summary](../results.md).\n")
    assert (repo / "docs" / "results.md").read_text() == SUMMARY                # the summary is written by hand
    assert (repo / "docs" / "results" / "table9.md").read_text() == "table 9 page\n"
    out = capsys.readouterr()
    assert "table8.md" in out.out and "note:" not in out.err                    # the summary links it already


def test_republishing_replaces_the_block_and_keeps_the_notes_around_it(repo, capsys):
    assert _publish(repo, "table8") == 0
    page = repo / "docs" / "results" / "table8.md"
    page.write_text(page.read_text() + "\n## About this run\n\nA note written by hand.\n")
    (repo / "results" / "table8.md").write_text("## Table 8 — again\n")
    assert _publish(repo, "table8") == 0
    text = page.read_text()
    assert "# Table 8 — again" in text and "synthetic" not in text and text.count("<!-- experiment:table8 -->") == 1
    assert text.endswith("## About this run\n\nA note written by hand.\n") and text.count("Back to the") == 1


def test_a_page_the_summary_does_not_link_is_named_on_stderr(repo, capsys):
    (repo / "docs" / "results.md").write_text("# Results\n")
    assert _publish(repo, "table8") == 0
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "results/table8.md" in err and err.count("\n") == 1
    assert (repo / "docs" / "results.md").read_text() == "# Results\n"


def test_without_a_summary_the_page_has_no_back_link(repo):
    (repo / "docs" / "results.md").unlink()
    assert _publish(repo, "table8") == 0
    assert "Back to the" not in (repo / "docs" / "results" / "table8.md").read_text()


def test_a_missing_pages_folder_is_one_error_line_and_creates_nothing(repo, capsys):
    argv = ["publish", "table8", "--results", str(repo / "results"), "--pages", str(repo / "nope")]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --pages ") and "\n" not in err
    assert not (repo / "nope").exists() and not (repo / "figures").exists()


def test_page_body_moves_headings_up_and_links_figures_from_the_page():
    body = page_body("## T\n\n### S\n\n#### C\n\n![a](x-1.png) ![b](../y.png) [t](t.png)\n", "../figures")
    assert body == "# T\n\n## S\n\n### C\n\n![a](../figures/x-1.png) ![b](../y.png) [t](../figures/t.png)\n"


def test_publish_section_on_a_page_without_the_block_appends_it(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Notes\n")
    publish_section(page, "a", "A body", "quick")
    assert page.read_text() == "# Notes\n\n<!-- experiment:a -->\n<!-- run: quick -->\nA body\n<!-- /experiment:a -->\n"
