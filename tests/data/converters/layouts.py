"""Tiny files in each official feature layout, as MATLAB v5 (scipy.io.savemat) or v7.3 (HDF5, column-major, 512-byte header).

Every builder returns ``Layout(src, expected)``: the path to pass to ``convert`` and what the
converted set must hold (per-modality train/test features and 0-based labels, classes, pairing).
Feature dims are deliberately not the published ones, to prove converters read dims from the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.io

MATLAB_CLASS = {"float64": "double", "float32": "single", "uint8": "uint8", "int32": "int32", "int64": "int64"}
VERSIONS = ("v5", "v7.3")


def matlab_header(version: bytes = b"\x00\x02") -> bytes:
    """The 128-byte MATLAB header (text, subsystem offset, version, endian indicator)."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\x00" * 8 + version + b"IM"


def write_mat(path: Path, variables: dict, version: str = "v5") -> Path:
    """Write ``variables`` like MATLAB would: v5 via savemat, v7.3 as HDF5 with the transposed arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if version == "v5":
        scipy.io.savemat(path, variables, format="5", oned_as="column")
        return path
    assert version == "v7.3", version
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in variables.items():
            value = np.asarray(value)
            if value.ndim == 1:
                value = value[:, None]  # MATLAB has no 1-D arrays: a column vector
            ds = f.create_dataset(key, data=value.T)  # MATLAB stores column-major
            ds.attrs["MATLAB_class"] = np.bytes_(MATLAB_CLASS[str(value.dtype)])
    with open(path, "r+b") as f:
        f.write(matlab_header())
    return path


def write_v73_sparse(path: Path, key: str, dense: np.ndarray) -> Path:
    """Add a MATLAB v7.3 sparse matrix (group with data/ir/jc, MATLAB_sparse = rows) to ``path``."""
    import scipy.sparse

    csc = scipy.sparse.csc_matrix(dense)
    with h5py.File(path, "a") as f:
        g = f.create_group(key)
        g.attrs["MATLAB_class"] = np.bytes_("double")
        g.attrs["MATLAB_sparse"] = np.uint64(dense.shape[0])
        g.create_dataset("data", data=csc.data.astype(np.float64))
        g.create_dataset("ir", data=csc.indices.astype(np.uint64))
        g.create_dataset("jc", data=csc.indptr.astype(np.uint64))
    return path


@dataclass
class Layout:
    src: Path
    expected: dict = field(default_factory=dict)  # modality -> {"train": (x, y0), "test": (x, y0)}
    n_classes: int = 0
    pairing: str = "class"
    label_kind: str = "single"
    files: list = field(default_factory=list)  # every file the layout wrote (for corruption tests)
    extra: dict = field(default_factory=dict)


def _features(rng, y, dim, dtype=np.float64):
    """Class-dependent features: a class offset in the first column plus noise."""
    x = rng.normal(size=(len(y), dim))
    x[:, 0] += 3.0 * np.asarray(y)
    return x.astype(dtype)


def _balanced(n, n_classes):
    return np.arange(n) % n_classes


# --------------------------------------------------------------------------- XMedia
XMEDIA_KEYS = {
    "image": ("I_tr_CNN", "I_te_CNN", "trImgCat", "teImgCat"),
    "text": ("T_tr_BOW", "T_te_BOW", "trTxtCat", "teTxtCat"),
    "audio": ("A_tr", "A_te", "trAudCat", "teAudCat"),
    "video": ("V_tr_CNN", "V_te_CNN", "trVidCat", "teVidCat"),
    "3d": ("d3_tr", "d3_te", "tr3dCat", "te3dCat"),
}
XMEDIA_SHAPES = {"image": (12, 12, 4), "text": (9, 12, 4), "audio": (5, 8, 4), "video": (11, 8, 3), "3d": (7, 8, 4)}


def xmedia(root: Path, version: str = "v5", n_classes: int = 4, seed: int = 0, **overrides) -> Layout:
    """``XMediaFeatures.mat``: 5 modalities, 1-based (N, 1) double labels; video test count 3 (not 100/20)."""
    rng = np.random.default_rng(seed)
    variables, expected = {}, {}
    for m, (ktr, kte, ltr, lte) in XMEDIA_KEYS.items():
        dim, ntr, nte = XMEDIA_SHAPES[m]
        ytr, yte = _balanced(ntr, n_classes), _balanced(nte, n_classes)
        xtr, xte = _features(rng, ytr, dim), _features(rng, yte, dim, np.float32)
        variables.update({ktr: xtr, kte: xte, ltr: (ytr + 1.0)[:, None], lte: (yte + 1.0)[:, None]})
        expected[m] = {"train": (xtr, ytr), "test": (xte, yte)}
    variables.update(overrides)
    path = write_mat(Path(root) / "XMediaFeatures.mat", variables, version)
    return Layout(path, expected, n_classes, files=[path])


# --------------------------------------------------------------------------- XMediaNet
XMEDIANET_PREFIX = {"image": "I", "text": "T", "video": "V", "audio": "A", "3d": "TD"}
XMEDIANET_SHAPES = {"image": (10, 15, 5), "text": (6, 15, 5), "video": (8, 10, 5), "audio": (4, 10, 5), "3d": (5, 10, 5)}


def xmedianet(root: Path, version: str = "v5", n_classes: int = 5, seed: int = 1, doc2vec: bool = False,
              **overrides) -> Layout:
    """``XMediaNetFeatures.mat`` (or the image-text ``XMediaNet5View_Doc2Vec.mat``): P_labs = train then test."""
    rng = np.random.default_rng(seed)
    mods = ("image", "text") if doc2vec else tuple(XMEDIANET_PREFIX)
    variables, expected = {}, {}
    for m in mods:
        p = XMEDIANET_PREFIX[m]
        dim, ntr, nte = XMEDIANET_SHAPES[m]
        if doc2vec and m == "text":
            dim = 30  # stands in for 300-d doc2vec
        ytr, yte = rng.permutation(_balanced(ntr, n_classes)), rng.permutation(_balanced(nte, n_classes))
        xtr, xte = _features(rng, ytr, dim, np.float32), _features(rng, yte, dim, np.float32)
        labs = np.concatenate([ytr, yte]) + 1.0
        variables.update({f"{p}_tr": xtr, f"{p}_te": xte, f"{p}_labs": labs[:, None]})
        expected[m] = {"train": (xtr, ytr), "test": (xte, yte)}
    variables.update(overrides)
    name = "XMediaNet5View_Doc2Vec.mat" if doc2vec else "XMediaNetFeatures.mat"
    path = write_mat(Path(root) / name, variables, version)
    return Layout(path, expected, n_classes, files=[path])


# --------------------------------------------------------------------------- DSCMR (Pascal, NUS-WIDE)
def dscmr(root: Path, version: str = "v5", n_classes: int = 4, seed: int = 2, n=(12, 5), dims=(16, 6),
          multi_label: bool = False, **overrides) -> Layout:
    """Six files, key = file stem; labels (N, 1) 0-based, or (N, C) multi-hot with ``multi_label``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    expected = {"image": {}, "text": {}}
    files = []
    for split, count in zip(("train", "test"), n):
        y = _balanced(count, n_classes)
        xi, xt = _features(rng, y, dims[0], np.float32), _features(rng, y, dims[1], np.float32)
        if multi_label:
            lab = np.eye(n_classes, dtype=np.float64)[y]
            every_third = np.arange(0, count, 3)
            lab[every_third, (y[every_third] + 1) % n_classes] = 1.0  # a second label
            y_exp = lab.astype(np.uint8)
        else:
            lab, y_exp = y[:, None].astype(np.float64), y
        for stem, value in ((f"{split}_img", xi), (f"{split}_txt", xt), (f"{split}_img_lab", lab)):
            value = overrides.get(stem, value)
            files.append(write_mat(root / f"{stem}.mat", {stem: value}, version))
        expected["image"][split] = (xi, y_exp)
        expected["text"][split] = (xt, y_exp)
    return Layout(root, expected, n_classes, pairing="instance", label_kind="multi" if multi_label else "single",
                  files=files)


# --------------------------------------------------------------------------- CUB
def cub(root: Path, version: str = "v5", seed: int = 3, seen=4, unseen=2, per_class=(5, 4), dims=(14, 8),
        with_classes_txt: bool = True) -> Layout:
    """Per-class ``features/<name>.mat`` (img, txt) + trainvalclasses.txt / testclasses.txt (+ classes.txt)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    names = [f"{i + 1:03d}.Bird_{i + 1}" for i in range(seen + unseen)]
    # seen / unseen interleaved, as in the real split (not a contiguous block)
    unseen_names = names[1::3][:unseen]
    seen_names = [c for c in names if c not in unseen_names][:seen]
    root.mkdir(parents=True, exist_ok=True)
    (root / "trainvalclasses.txt").write_text("\n".join(seen_names) + "\n")
    (root / "testclasses.txt").write_text("\n".join(unseen_names) + "\n")
    if with_classes_txt:
        (root / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(names)))
    files, expected = [], {"image": {}, "text": {}}
    for split, group in (("train", seen_names), ("test", unseen_names)):
        xs, ts, ys = [], [], []
        for c in group:
            k = names.index(c)
            n = per_class[0] if split == "train" else per_class[1]
            y = np.full(n, k)
            xi, xt = _features(rng, y, dims[0]), _features(rng, y, dims[1], np.float32)
            files.append(write_mat(root / "features" / f"{c}.mat", {"img": xi, "txt": xt}, version))
            xs.append(xi), ts.append(xt), ys.append(y)
        y = np.concatenate(ys)
        expected["image"][split] = (np.concatenate(xs), y)
        expected["text"][split] = (np.concatenate(ts), y)
    zero_shot = {"seen": sorted(names.index(c) for c in seen_names),
                 "unseen": sorted(names.index(c) for c in unseen_names)}
    return Layout(root, expected, len(names), pairing="instance", files=files,
                  extra={"zero_shot": zero_shot, "names": names})


# --------------------------------------------------------------------------- Wikipedia
def wikipedia(root: Path, version: str = "v5", n_classes: int = 3, seed: int = 4, n=(9, 6), dims=(13, 10),
              categories: bool = True, list_lines: dict | None = None, **overrides) -> Layout:
    """``raw_features.mat`` (I_tr, I_te, T_tr, T_te) + tab-separated .list files with 1-based categories."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    variables, expected, ids = {}, {"image": {}, "text": {}}, {}
    for split, sfx, count in (("train", "tr", n[0]), ("test", "te", n[1])):
        y = rng.permutation(_balanced(count, n_classes))
        xi, xt = _features(rng, y, dims[0]), _features(rng, y, dims[1])
        variables.update({f"I_{sfx}": xi, f"T_{sfx}": xt})
        expected["image"][split] = (xi, y)
        expected["text"][split] = (xt, y)
        txt = [f"{rng.integers(16**8):08x}-{split}{i}" for i in range(count)]
        img = [f"{rng.integers(16**8):08x}" for _ in range(count)]
        ids[split] = (txt, img)
        lines = [f"{t}\t{i}\t{c + 1}" for t, i, c in zip(txt, img, y)]
        if list_lines and split in list_lines:
            lines = list_lines[split]
        name = "trainset_txt_img_cat.list" if split == "train" else "testset_txt_img_cat.list"
        root.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
    variables.update(overrides)
    path = write_mat(root / "raw_features.mat", variables, version)
    names = [f"cat{c}" for c in range(n_classes)]
    if categories:
        (root / "categories.list").write_text("\n".join(names) + "\n")
    return Layout(root, expected, n_classes, pairing="instance", files=[path],
                  extra={"ids": ids, "names": names if categories else None})


BUILDERS = {"xmedia": xmedia, "xmedianet": xmedianet, "pascal": dscmr, "nuswide": dscmr, "cub": cub,
            "wikipedia": wikipedia}
