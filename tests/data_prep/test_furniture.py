"""Furniture builder: the catalogue reader, classes from categories (never names), the written set (stub extractors), bad input."""

import zipfile
import zlib

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import furniture

BOX_OBJ = "".join(f"v {x} {y} {z}\n" for x in (0, 1) for y in (0, 2) for z in (0, 3)) + "".join(
    f"f {a} {b} {c}\n" for a, b, c in [(1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2),
                                       (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4)])


def write_catalog(path, pieces, header="id=Test#Catalog\nname=Test catalog\nversion=1.0\nlicense=Public domain\n"):
    """A .sh3f archive; ``pieces``: list of dicts with name, tags, category and optional rotation."""
    lines = [header]
    with zipfile.ZipFile(path, "w") as z:
        for n, p in enumerate(pieces, 1):
            key = f"{path.stem}{n}"
            lines += [f"id#{n}={path.stem}#{key}", f"name#{n}={p['name']}", f"tags#{n}={p.get('tags', '')}",
                      f"category#{n}={p['category']}", f"icon#{n}=/{key}.png", f"model#{n}=/{key}/{key}.obj"]
            if p.get("rotation"):
                lines.append(f"modelRotation#{n}={p['rotation']}")
            z.writestr(f"{key}.png", b"png")
            z.writestr(f"{key}/{key}.obj", BOX_OBJ)
        z.writestr(furniture.PROPERTIES, "\n".join(lines) + "\n")
    return path


def make_catalogs(root, counts):
    """``counts``: category -> pieces, spread over two archives; every name is 'Bed' (no class word)."""
    root.mkdir(parents=True, exist_ok=True)
    parts = {"A": [], "B": []}
    for cat, n in counts.items():
        for i in range(n):
            parts["AB"[i % 2]].append({"name": "Bed", "tags": f"tag{i}" if i % 3 else "", "category": cat})
    for stem, pieces in parts.items():
        write_catalog(root / f"{stem}.sh3f", pieces)
    return root


def test_properties_reader_handles_comments_continuations_and_escapes():
    text = ("# a comment\n! another\nname#1=Caf\\u00e9 table\nlong#1=one \\\n    two\n"
            "tags#1 = a, b\nempty#1=\nkey\\=with\\:colon=value\n")
    assert furniture.parse_properties(text) == {
        "name#1": "Café table", "long#1": "one two", "tags#1": "a, b", "empty#1": "", "key=with:colon": "value"}


def test_discover_reads_every_archive_and_select_keeps_big_categories(tmp_path):
    root = make_catalogs(tmp_path / "cat", {"Kitchen": 5, "Bedroom": 4, "Staircases": 2})
    headers, pieces = furniture.discover(root, tmp_path / "cache")
    assert set(headers) == {"A.sh3f", "B.sh3f"} and headers["A.sh3f"]["license"] == "Public domain"
    assert len(pieces) == 11 and len({p.id for p in pieces}) == 11
    assert [p.id for p in pieces] == sorted(p.id for p in pieces)
    classes, kept, dropped = furniture.select(pieces, min_per_class=4)
    assert classes == ["Bedroom", "Kitchen"] and len(kept) == 9 and dropped == {"Staircases": 2}
    _, kept, _ = furniture.select(pieces, min_per_class=4, limit=2)
    assert sorted(p.category for p in kept) == ["Bedroom"] * 2 + ["Kitchen"] * 2
    assert all(p.icon.is_file() and p.model.is_file() for p in pieces)
    assert {p.text for p in pieces} >= {"Bed", "Bed. tag1"}


def test_a_catalogue_without_properties_or_with_a_bad_rotation_fails_in_one_line(tmp_path):
    root = tmp_path / "cat"
    root.mkdir()
    with zipfile.ZipFile(root / "X.sh3f", "w") as z:
        z.writestr("readme.txt", "no catalogue here")
    with pytest.raises(CliError, match="X.sh3f: no PluginFurnitureCatalog.properties"):
        furniture.discover(root, tmp_path / "cache")
    (root / "X.sh3f").unlink()
    write_catalog(root / "Y.sh3f", [{"name": "Bed", "category": "Bedroom", "rotation": "1 0 0"}])
    with pytest.raises(CliError, match="modelRotation must be 9 numbers"):
        furniture.discover(root, tmp_path / "cache")
    with pytest.raises(CliError, match="no .sh3f catalogue archives"):
        furniture.discover(tmp_path / "cache", tmp_path / "cache2")


def test_model_rotation_is_applied_to_the_mesh(tmp_path):
    pytest.importorskip("trimesh")
    root = tmp_path / "cat"
    root.mkdir()
    # the box is 1 x 2 x 3 (x, y, z); Sweet Home 3D's "z up to y up" rotation makes it 1 x 3 x 2
    write_catalog(root / "R.sh3f", [{"name": "Bed", "category": "Bedroom"},
                                    {"name": "Bed", "category": "Bedroom", "rotation": "1 0 0 0 0 1 0 -1 0"}])
    _, (plain, turned) = furniture.discover(root, tmp_path / "cache")
    ext = lambda p: np.ptp(furniture.piece_mesh(p)[0], axis=0)  # noqa: E731
    np.testing.assert_allclose(ext(plain), [1, 2, 3])
    np.testing.assert_allclose(ext(turned), [1, 3, 2])


class StubExtractors:
    """Deterministic per-piece features (a function of the piece id), no model."""

    dims = {"image": 8, "text": 6, "3d": 5}

    def __init__(self, cache, threads, log):
        self.info = {m: {"name": f"stub {m}", "dim": d} for m, d in self.dims.items()}

    @classmethod
    def feature(cls, modality, piece_id):
        return np.random.default_rng(zlib.crc32(f"{modality}:{piece_id}".encode())).normal(size=cls.dims[modality])

    def _all(self, modality, pieces):
        return np.stack([self.feature(modality, p.id) for p in pieces])

    def image(self, pieces):
        return self._all("image", pieces)

    def text(self, pieces):
        return self._all("text", pieces)

    def mesh(self, pieces):
        return self._all("3d", pieces)


def _build(tmp_path, out, extra=()):
    root = tmp_path / "cat"
    if not root.exists():
        make_catalogs(root, {"Kitchen": 30, "Living room": 20, "Staircases": 2})
    argv = ["--furniture-dir", str(root), "--cache", str(tmp_path / "cache"), "--out", str(out), "--quiet", *extra]
    return run_cli(lambda a: furniture.main(a, make_extractors=StubExtractors), argv)


def test_build_writes_an_instance_paired_set_labelled_by_category(tmp_path):
    out = tmp_path / "furniture"
    assert _build(tmp_path, out) == 0
    fs = load_feature_set(out)
    assert fs.classes == ["Kitchen", "Living room"] and fs.paired and not fs.synthetic
    assert fs.modalities == ["image", "text", "3d"]
    assert {s: fs.count("3d", s) for s in ("train", "val", "test")} == {"train": 32, "val": 3, "test": 15}
    ids = fs.manifest["item_ids"]["piece"]
    # every piece is named "Bed": the label can only have come from the category
    by_id = {p.id: p.category for p in furniture.discover(tmp_path / "cat", tmp_path / "cache")[1]}
    for split in ("train", "val", "test"):
        for m in fs.modalities:
            want = np.stack([StubExtractors.feature(m, i) for i in ids[split]]).astype(np.float16)
            np.testing.assert_array_equal(fs.x(m, split), want)
        assert [fs.classes[c] for c in fs.y("text", split)] == [by_id[i] for i in ids[split]]
    prov = fs.manifest["provenance"]
    assert prov["selection"]["dropped_categories"] == {"Staircases": 2}
    assert prov["selection"]["class_counts"] == {"Kitchen": 30, "Living room": 20}
    assert set(prov["catalogues"]) == {"A.sh3f", "B.sh3f"} and prov["converter"] == "data_prep.furniture"
    assert "trimesh" in prov["python_packages"]


def test_compare_limit_and_existing_output(tmp_path, capsys):
    assert _build(tmp_path, tmp_path / "a") == 0
    assert _build(tmp_path, tmp_path / "b", ["--limit", "4", "--compare", str(tmp_path / "a")]) == 0
    assert "equal within float16 rounding" in capsys.readouterr().out
    assert _build(tmp_path, tmp_path / "a") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and "\n" not in err
    assert run_cli(furniture.main, ["--furniture-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
