"""``make search-demo QUERY=...`` (data_prep/search_demo.py): a picture drawn here goes through the shipped extractor, the exported Tux-12 space and the gallery indexes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvs_tf.utils.cli import CliError
from data_prep import search_demo
from data_prep.search_demo import query_modality, run_extractor

REPO = Path(__file__).resolve().parents[2]
DATAPREP_PYTHON = REPO / ".venv-dataprep" / "bin" / "python"


def test_the_query_names_its_modality(tmp_path):
    png, wav = tmp_path / "cat.PNG", tmp_path / "miaou.wav"
    png.write_bytes(b"x")
    wav.write_bytes(b"x")
    assert query_modality(str(png)) == "image"
    assert query_modality(str(wav)) == "speech" and query_modality(str(wav), "audio") == "audio"
    assert query_modality("a red apple on a tree") == "text"
    with pytest.raises(CliError, match="no such file"):
        query_modality(str(tmp_path / "missing.png"))
    with pytest.raises(CliError, match="--modality text: the query is a image"):
        query_modality(str(png), "text")
    with pytest.raises(CliError, match="QUERY is empty"):
        query_modality("  ")


def test_a_missing_data_prep_environment_is_one_line(tmp_path):
    with pytest.raises(CliError, match="the data-prep environment is missing; run: make .venv-dataprep"):
        run_extractor(tmp_path / "no-python", "a sentence", "text", tmp_path, tmp_path)


def draw_picture(path: Path) -> Path:
    """A red apple with a green stalk, drawn with matplotlib (no shipped image is used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.add_patch(plt.Circle((0.5, 0.45), 0.3, color="red"))
    ax.plot([0.5, 0.56], [0.75, 0.92], color="green", lw=5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.savefig(path)
    plt.close(fig)
    return path


def fake_stamps(root: Path, ids) -> Path:
    """A stamps folder with an image, a caption and a French clip file for every Tux-12 stamp id."""
    for i in ids:
        stem = root / i
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".png").write_bytes(b"")
        stem.with_suffix(".txt").write_text(f"caption of {stem.name}\nfr.utf8=legende\n")
        (stem.parent / f"{stem.name}_desc_fr.ogg").write_bytes(b"")
    return root


@pytest.mark.slow
@pytest.mark.skipif(not DATAPREP_PYTHON.is_file(), reason="needs the data-prep environment (make .venv-dataprep)")
def test_search_demo_answers_a_drawn_picture(tmp_path):
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import SPLITS, load_feature_set

    fs = load_feature_set(dataset_path("tux12"))
    ids = [i for s in SPLITS for i in fs.manifest["item_ids"]["stamp"][s]]
    stamps = fake_stamps(tmp_path / "stamps", ids)
    picture = draw_picture(tmp_path / "apple.png")
    cmd = [sys.executable, "-m", "data_prep.search_demo", str(picture), "--k", "2", "--epochs", "1",
           "--cache", str(tmp_path / "cache"), "--data-cache", str(tmp_path / "data_cache"), "--stamps-dir", str(stamps)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("query: image 'apple.png' (1280-d features), space ") and "(1 epochs)" in lines[0]
    assert lines[1] == f"media files below {stamps}"
    heads = [ln for ln in lines if ln.startswith("nearest stamps by ")]
    assert [h.split("(")[-1] for h in heads] == [f"{m}, 701 stamps):" for m in search_demo.GALLERIES]
    hits = [ln.split() for ln in lines if ln.startswith("   ") and ln.split()[0].isdigit()]
    assert len(hits) == 2 * 4
    for rank, score, cls, stamp, *caption in hits:
        assert rank in ("1", "2")
        assert stamp in ids and cls in fs.classes and -1 <= float(score) <= 1
        assert " ".join(caption) == f"\"caption of {Path(stamp).name}\""
    media = [ln.strip() for ln in lines if ln.startswith("              ")]
    assert len(media) == 2 * 3 and all((stamps / m).is_file() for m in media)      # speech, image, audio hits
    root = next((tmp_path / "cache").iterdir())
    assert root.name.startswith(f"tux12-{fs.manifest_sha256[:12]}-1ep")
    assert (root / "export" / "export.json").is_file() and not list(root.glob("query-*"))
    # a second query reuses the cached space: no training, no export, no indexing
    again = subprocess.run(cmd[:3] + ["a red apple"] + cmd[4:], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("query: text 'a red apple' (384-d features)")
    assert "training" not in again.stderr and "indexing" not in again.stderr
