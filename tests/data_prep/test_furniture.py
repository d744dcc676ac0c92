"""Furniture builder: the catalogue reader, classes from categories (never names), the manifest extract reads, the written set (stub extractors), bad input."""

import zipfile

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import furniture
from tests.data_prep.stubs import StubExtractors

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
            z.writestr(f"{key}/{key}.obj", f"# {key}\n{BOX_OBJ}")  # a comment makes each file its own
        z.writestr(furniture.PROPERTIES, "\n".join(lines) + "\n")
    return path


def make_catalogs(root, counts):
    """``counts``: category -> pieces, spread over two archives; every name is 'Bed' (no class word); every
    fifth model is turned z-up to y-up."""
    root.mkdir(parents=True, exist_ok=True)
    parts = {"A": [], "B": []}
    for cat, n in counts.items():
        for i in range(n):
            parts["AB"[i % 2]].append({"name": "Bed", "tags": f"tag{i}" if i % 3 else "", "category": cat,
                                       "rotation": "1 0 0 0 0 1 0 -1 0" if i % 5 == 4 else None})
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


def source(piece, modality):
    """What the stub encoders see of a piece: its icon's path, its text, or its mesh file (a rotated one as staged)."""
    if modality == "image":
        return str(piece.icon)
    if modality == "text":
        return piece.text
    if piece.rotation is None:
        return piece.model.read_text()
    return StubExtractors.mesh_key(*furniture.piece_mesh(piece))


def _build(tmp_path, out, extra=(), made=None, where=None):
    where = where or tmp_path  # "": a relative catalogue folder and cache
    if not (tmp_path / "cat").exists():
        make_catalogs(tmp_path / "cat", {"Kitchen": 30, "Living room": 20, "Staircases": 2})

    def factory(*a):
        ext = StubExtractors(*a)
        if made is not None:
            made.append(ext)
        return ext

    argv = ["--furniture-dir", f"{where}/cat", "--cache", f"{where}/cache", "--out", str(out), "--quiet", *extra]
    return run_cli(lambda a: furniture.main(a, make_extractors=factory), argv)


def test_build_writes_an_instance_paired_set_labelled_by_category(tmp_path):
    pytest.importorskip("trimesh")
    out, made = tmp_path / "furniture", []
    assert _build(tmp_path, out, made=made) == 0
    fs = load_feature_set(out)
    assert fs.classes == ["Kitchen", "Living room"] and fs.paired and not fs.synthetic
    assert fs.modalities == ["image", "text", "3d"]
    assert {s: fs.count("3d", s) for s in ("train", "val", "test")} == {"train": 32, "val": 3, "test": 15}
    ids = fs.manifest["item_ids"]["piece"]
    # every piece is named "Bed": the label can only have come from the category
    pieces = {p.id: p for p in furniture.discover(tmp_path / "cat", tmp_path / "cache")[1]}
    for split in ("train", "val", "test"):
        for m in fs.modalities:
            want = [StubExtractors.feature(m, source(pieces[i], m)) for i in ids[split]]
            np.testing.assert_array_equal(fs.x(m, split), np.stack(want).astype(np.float32).astype(np.float16))
        assert [fs.classes[c] for c in fs.y("text", split)] == [pieces[i].category for i in ids[split]]
    # only the rotated meshes were staged (the others are read as they are); the scratch folder is gone
    kept = [p for p in pieces.values() if p.category != "Staircases"]
    assert sorted(k for kind, k in made[0].staged if kind == "mesh") == sorted(
        source(p, "3d") for p in kept if p.rotation is not None)
    assert sum(p.rotation is not None for p in kept) == 10
    assert not [p.name for p in (tmp_path / "cache").iterdir() if "extract" in p.name]
    prov = fs.manifest["provenance"]
    assert prov["selection"]["dropped_categories"] == {"Staircases": 2}
    assert prov["selection"]["class_counts"] == {"Kitchen": 30, "Living room": 20}
    assert set(prov["catalogues"]) == {"A.sh3f", "B.sh3f"} and prov["converter"] == "data_prep.furniture"
    assert "trimesh" in prov["python_packages"]


def test_compare_limit_and_existing_output(tmp_path, capsys, monkeypatch):
    pytest.importorskip("trimesh")
    assert _build(tmp_path, tmp_path / "a") == 0
    assert _build(tmp_path, tmp_path / "b", ["--limit", "4", "--compare", str(tmp_path / "a")]) == 0
    assert "equal within float16 rounding" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # a relative catalogue folder and cache: the manifest's paths still resolve
    assert _build(tmp_path, tmp_path / "r", where=".") == 0
    assert sum(load_feature_set(tmp_path / "r").count("3d", s) for s in ("train", "val", "test")) == 50
    assert _build(tmp_path, tmp_path / "a") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and "\n" not in err
    assert run_cli(furniture.main, ["--furniture-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
