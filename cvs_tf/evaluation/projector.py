"""TensorBoard Embedding Projector files and a 2-D PCA / t-SNE picture of a run's space, before and after training.

``python -m cvs_tf.evaluate RUN_DIR --projector`` writes ``RUN_DIR/projector/`` (open it with
``tensorboard --logdir RUN_DIR/projector``, tab *Projector*)::

    projector_config.pbtxt    tensorboard.plugins.projector.ProjectorConfig: two embeddings, "before" and "after"
    before.tsv, after.tsv     one row per item of the split: its unit embedding (D tab-separated floats)
    metadata.tsv              header "class  modality  id", then one row per item (the same rows for both)
    space.png                 2x2: PCA and t-SNE of the same items, before and after training
    projector.json            format (cvs_tf.projector), what was embedded: run, stage, split, modalities, counts, seed, files

"After" is the run's model at its last (or ``--stage``) finished stage. "Before" is the same
space re-built from the run's own ``config.json`` with its seed, exactly as the trainer builds it
before the first step (``keras.utils.set_random_seed(seed)``, ``build_model``, then with
``standardize`` the train-split statistics): the initial weights of that run, not a checkpoint
(none is kept of them). Rows of every modality of the model are stacked in the model's modality
order; labels only colour the picture, they are never used to embed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PROJECTOR_DIR = "projector"
PROJECTOR_FORMAT = "cvs_tf.projector"
PROJECTOR_MANIFEST = "projector.json"
CONFIG_FILE = "projector_config.pbtxt"
METADATA_FILE = "metadata.tsv"
PNG_FILE = "space.png"
WHEN = ("before", "after")
MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def initial_model(run_dir: str | Path, fs):
    """The run's space with the initial weights its training started from (config and seed re-applied)."""
    import keras

    from cvs_tf.models.factory import build_model
    from cvs_tf.training.run_dir import read_run_config

    cfg, _ = read_run_config(run_dir)
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg, fs)
    model.fit_standardization(fs)  # as the trainer does before the first step (standardize only)
    return model


def _class_names(fs, y: np.ndarray) -> list[str]:
    classes = fs.classes
    if y.ndim == 2:  # multi-hot: every class of the item, "|"-joined
        return ["|".join(classes[c] for c in np.flatnonzero(row)) or "(none)" for row in y]
    return [classes[int(c)] for c in y]


def _ids(fs, m: str, split: str, n: int) -> list[str]:
    """The items' ids recorded in the manifest (``item_ids``), else ``split:row``."""
    item_ids = fs.manifest.get("item_ids") or {}
    for key in [f"{m}_id"] + (list(item_ids) if fs.paired else []):
        ids = (item_ids.get(key) or {}).get(split)
        if isinstance(ids, list) and len(ids) == n:
            return [str(i) for i in ids]
    return [f"{split}:{r}" for r in range(n)]


def embed_split(model, fs, modalities: Sequence[str], split: str) -> np.ndarray:
    """Unit embeddings of every row of ``split`` of each modality, stacked: (sum N_m, D) float32."""
    return np.concatenate([np.asarray(model.embed(m, fs.x(m, split)), dtype=np.float32) for m in modalities])


def metadata_rows(fs, modalities: Sequence[str], split: str) -> list[tuple[str, str, str]]:
    """``(class, modality, id)`` of each stacked row (the order of :func:`embed_split`)."""
    rows = []
    for m in modalities:
        y = np.asarray(fs.y(m, split))
        rows += list(zip(_class_names(fs, y), [m] * len(y), _ids(fs, m, split, len(y))))
    return rows


def _tsv_cell(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split()) or "-"


def write_projector_files(out: Path, tensors: dict[str, np.ndarray], meta: list[tuple[str, str, str]]) -> Path:
    """``<name>.tsv`` per tensor, one shared ``metadata.tsv`` and ``projector_config.pbtxt`` (paths relative to ``out``)."""
    from tensorboard.plugins import projector

    with open(out / METADATA_FILE, "w", encoding="utf-8") as f:
        f.write("class\tmodality\tid\n")
        f.writelines("\t".join(_tsv_cell(c) for c in row) + "\n" for row in meta)
    config = projector.ProjectorConfig()
    for name, x in tensors.items():
        np.savetxt(out / f"{name}.tsv", x, fmt="%.8g", delimiter="\t")
        emb = config.embeddings.add()
        emb.tensor_name = name
        emb.tensor_path = f"{name}.tsv"
        emb.metadata_path = METADATA_FILE
        emb.tensor_shape.extend(x.shape)
    projector.visualize_embeddings(str(out), config)
    return out / CONFIG_FILE


def project_2d(x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """``{"PCA": (N, 2), "t-SNE": (N, 2)}``: PCA of the embeddings, and t-SNE after a PCA to 50 dims."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    pca = PCA(n_components=2, random_state=seed).fit_transform(x)
    reduced = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    # one thread: deterministic, and OpenMP's spinning threads made t-SNE 20x slower on a busy 2-core machine
    with threadpool_limits(limits=1):
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    return {"PCA": pca, "t-SNE": tsne}


def plot_space(path: Path, tensors: dict[str, np.ndarray], meta, seed: int, title: str) -> Path:
    """2x2 scatter (rows: before/after; columns: PCA/t-SNE); colour = class, marker = modality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(c for c, _, _ in meta))
    mods = list(dict.fromkeys(m for _, m, _ in meta))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    cls_idx = np.array([classes.index(c) for c, _, _ in meta])
    mod_of = np.array([m for _, m, _ in meta])
    fig, axes = plt.subplots(len(tensors), 2, figsize=(11, 5 * len(tensors)), squeeze=False)
    for r, (when, x) in enumerate(tensors.items()):
        for c, (method, xy) in enumerate(project_2d(x, seed).items()):
            ax = axes[r, c]
            for k, m in enumerate(mods):
                sel = mod_of == m
                ax.scatter(xy[sel, 0], xy[sel, 1], c=[colours(i % colours.N) for i in cls_idx[sel]],
                           marker=MARKERS[k % len(MARKERS)], s=14, alpha=0.75, linewidths=0)
            ax.set_title(f"{when} training: {method}")
            ax.set_xticks([])
            ax.set_yticks([])
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=colours(i % colours.N), label=c) for i, c in enumerate(classes[:20])]
    handles += [Line2D([], [], ls="", marker=MARKERS[k % len(MARKERS)], color="0.3", label=m) for k, m in enumerate(mods)]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.86, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def projector_contents(run_dir: str | Path, model, fs, *, split: str = "test", png: bool = True) -> dict:
    """Everything :func:`write_projector` writes, computed (and refused, in one line) before anything is written.

    An extended run is refused: its initial weights are partly another run's trained ones; so is a
    ``RUN_DIR/projector`` that an earlier ``--projector`` did not write.
    """
    from cvs_tf.training.run_dir import read_run_config
    from cvs_tf.utils.output import refusal

    run_dir = Path(run_dir)
    cfg, resolved = read_run_config(run_dir)
    if resolved.get("extended_from") is not None:
        raise ValueError(f"{run_dir}: --projector does not apply to an extended run (its 'before' space would "
                         "hold the source run's trained weights); evaluate it without --projector")
    if msg := refusal(run_dir / PROJECTOR_DIR, projector_kind(), overwrite=True):
        raise ValueError(msg)
    mods = list(model.modalities)
    tensors = {"before": embed_split(initial_model(run_dir, fs), fs, mods, split),
               "after": embed_split(model, fs, mods, split)}
    stage = model.current_stage + 1
    info = {"format": PROJECTOR_FORMAT, "run": run_dir.name, "stage": stage, "stage_name": model.stage_name(model.current_stage), "split": split,
            "dataset": fs.name, "data_label": fs.data_label, "modalities": {m: fs.count(m, split) for m in mods},
            "dim": int(tensors["after"].shape[1]), "seed": cfg.train.seed,
            "before": "the run's space re-built from its config.json with its seed (its initial weights)",
            "files": [CONFIG_FILE, METADATA_FILE, "before.tsv", "after.tsv"] + ([PNG_FILE] if png else [])}
    title = (f"{fs.name} [{fs.data_label}], {cfg.model.space}, {split} split, stage {stage}: "
             "colour = class, marker = modality")
    return {"tensors": tensors, "meta": metadata_rows(fs, mods, split), "info": info, "png": png,
            "title": title, "seed": cfg.train.seed}


def write_projector(run_dir: str | Path, model, fs, *, split: str = "test", out: str | Path | None = None,
                    png: bool = True, contents: dict | None = None) -> Path:
    """Write the projector files (and ``space.png``) of ``model`` (a stage of ``run_dir``) and of its initial weights.

    ``out`` defaults to ``RUN_DIR/projector``; it is written atomically, locked, and replaces an earlier
    projector folder only (:class:`cvs_tf.utils.output.OutputDir`).
    ``contents``: what :func:`projector_contents` computed for these arguments (else computed here).
    """
    from cvs_tf.utils.output import OutputDir

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / PROJECTOR_DIR
    c = contents if contents is not None else projector_contents(run_dir, model, fs, split=split, png=png)
    with OutputDir(out, projector_kind(), overwrite=True) as dest, dest.build() as tmp:
        write_projector_files(tmp, c["tensors"], c["meta"])
        if c["png"]:
            plot_space(tmp / PNG_FILE, c["tensors"], c["meta"], c["seed"], c["title"])
        (tmp / PROJECTOR_MANIFEST).write_text(json.dumps(c["info"], indent=2) + "\n")
    return out


def projector_kind():
    """What an earlier projector folder is (replaced by the next ``--projector``; anything else is refused)."""
    from cvs_tf.utils.output import OutputKind

    return OutputKind("projector", PROJECTOR_MANIFEST, PROJECTOR_FORMAT, lambda info: list(info["files"]),
                      legacy=lambda info: isinstance(info.get("files"), list) and "before" in info)
