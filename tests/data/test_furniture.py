"""The shipped Furniture set: loads by name, is instance-paired, has the documented classes and counts, classes from categories."""

import numpy as np
import pytest

from cvs_tf.data import load_dataset
from cvs_tf.data.mesh import DIM
from cvs_tf.data.store import SPLITS

# docs/datasets-real.md, "Furniture"
CLASS_COUNTS = {"Bathroom": 50, "Bedroom": 72, "Characters": 37, "Doors and windows": 35, "Exterior": 100,
                "Kitchen": 127, "Lights": 34, "Living room": 147, "Miscellaneous": 146, "Office": 42, "Vehicles": 28}
SPLIT_SIZES = {"train": 516, "val": 57, "test": 245}
DIMS = {"image": 1280, "text": 384, "3d": DIM}
# Every category of the five catalogues in sweethome3d-furniture 1.8-1 (Staircases has 2 pieces: dropped).
CATALOGUE_CATEGORIES = set(CLASS_COUNTS) | {"Staircases"}


@pytest.fixture(scope="module")
def fs():
    return load_dataset("furniture")


def test_loads_by_name_with_the_documented_modalities_and_sizes(fs):
    assert fs.modalities == ["image", "text", "3d"]
    assert not fs.synthetic and fs.paired
    for m, d in DIMS.items():
        for s in SPLITS:
            x = fs.x(m, s)
            assert x.shape == (SPLIT_SIZES[s], d) and x.dtype == np.float16
            assert np.isfinite(x.astype(np.float32)).all()


def test_documented_classes_and_counts(fs):
    assert fs.classes == sorted(CLASS_COUNTS)
    counts = sum(np.bincount(fs.y("image", s), minlength=len(fs.classes)) for s in SPLITS)
    assert dict(zip(fs.classes, counts.tolist())) == CLASS_COUNTS
    prov = fs.manifest["provenance"]
    assert prov["selection"]["class_counts"] == CLASS_COUNTS
    assert prov["selection"]["dropped_categories"] == {"Staircases": 2}
    # stratified 70/30: each class has round(0.3 n) test items
    test = np.bincount(fs.y("image", "test"), minlength=len(fs.classes))
    assert test.tolist() == [round(0.3 * CLASS_COUNTS[c]) for c in fs.classes]


def test_instance_paired_rows_are_the_same_piece_in_every_modality(fs):
    ids = fs.manifest["item_ids"]["piece"]
    all_ids = [i for s in SPLITS for i in ids[s]]
    assert len(all_ids) == len(set(all_ids)) == sum(CLASS_COUNTS.values())
    for s in SPLITS:
        assert len(ids[s]) == SPLIT_SIZES[s]
        for m in fs.modalities:
            np.testing.assert_array_equal(fs.y(m, s), fs.y("image", s))
    # distinct pieces have distinct 3D and image rows (no row was duplicated or shifted)
    x = np.concatenate([fs.x("3d", s) for s in SPLITS])
    assert len(np.unique(x, axis=0)) > 0.95 * len(x)


def test_classes_are_catalogue_categories_not_derived_from_names(fs):
    assert set(fs.classes) <= CATALOGUE_CATEGORIES
    prov = fs.manifest["provenance"]
    assert "category#N" in prov["selection"]["classes"] and "never names" in prov["selection"]["classes"]
    # item ids are catalogue ids (catalogue#model), which carry no category
    ids = [i for s in SPLITS for i in fs.manifest["item_ids"]["piece"][s]]
    assert all("#" in i for i in ids)
    assert prov["debian_packages"] == {"sweethome3d-furniture": "1.8-1"}
    assert prov["extractors"]["3d"]["dim"] == DIM
