"""The published shapes of the licensed benchmarks (XMedia, XMediaNet, Pascal, NUS-WIDE, CUB): modalities, dims, counts, classes.

The synthetic stand-ins are generated with exactly these shapes (:mod:`cvs_tf.data.synthetic`),
and the converters compare what a real file holds against them (:mod:`cvs_tf.data.converters`).
:data:`NAMES` are the benchmarks with a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModalitySpec:
    """Published dimension and train/test counts of one modality (train includes validation)."""

    dim: int
    train: int
    test: int


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark: classes, modalities, pairing; ``seen`` > 0 makes a zero-shot split."""

    name: str
    title: str
    classes: int
    modalities: dict[str, ModalitySpec]
    pairing: str
    seen: int = 0  # zero-shot: classes [0, seen) give train/val, [seen, classes) give test
    multi_label: bool = False  # whether its stand-in offers --multi-label
    notes: tuple[str, ...] = field(default=())


_CNN, _BOW, _MFCC, _3D = 4096, 3000, 29, 4700  # XMedia's dims (design.md §7)


def _modalities(**dims_counts: tuple[int, int, int]) -> dict[str, ModalitySpec]:
    """``image=(dim, train, test), ...`` in the given order (``d3`` stands for ``3d``)."""
    return {m.replace("d3", "3d"): ModalitySpec(*v) for m, v in dims_counts.items()}


DATASET_SPECS: dict[str, DatasetSpec] = {
    "xmedia": DatasetSpec(
        "xmedia", "XMedia", 20,
        _modalities(image=(_CNN, 4000, 1000), text=(_BOW, 4000, 1000), audio=(_MFCC, 800, 200),
                    video=(_CNN, 400, 100), d3=(_3D, 400, 100)),
        "class", notes=("counts: thesis Table 1; dims: design.md §7 (CNN 4096, BoW 3000, MFCC 29, 3D 4700)",),
    ),
    "xmedianet": DatasetSpec(
        "xmedianet", "XMediaNet", 200,
        _modalities(image=(_CNN, 32000, 8000), text=(_BOW, 32000, 8000), video=(_CNN, 8000, 2000),
                    audio=(_MFCC, 8000, 2000), d3=(_3D, 1600, 400)),
        "class", notes=("counts: thesis Table 1; dims: assumed equal to XMedia's (not published)",),
    ),
    "pascal": DatasetSpec(
        "pascal", "Pascal Sentence", 20, _modalities(image=(_CNN, 800, 200), text=(300, 800, 200)),
        "instance", notes=("counts: thesis Table 3; dims and 20 classes: DSCMR layout (design.md §7)",),
    ),
    "nuswide": DatasetSpec(
        "nuswide", "NUS-WIDE", 20, _modalities(image=(_CNN, 8000, 2000), text=(300, 8000, 2000)),
        "instance", multi_label=True,
        notes=("counts and 20 classes: thesis Table 3; dims: assumed equal to Pascal's DSCMR features",),
    ),
    "cub": DatasetSpec(
        "cub", "CUB-200 (zero-shot)", 200, _modalities(image=(2048, 8855, 2933), text=(1024, 8855, 2933)),
        "instance", seen=150,
        notes=("zero-shot split 150 seen / 50 unseen classes; counts: CUB-200-2011 images of the "
               "seen / unseen classes in Reed et al.'s split (8855 / 2933); dims: ResNet-101 2048, "
               "char-CNN-RNN text 1024",),
    ),
}
NAMES = tuple(DATASET_SPECS)


def expected_counts(name: str) -> dict[str, tuple[int, int]]:
    """Published (train, test) item counts per modality of benchmark ``name``."""
    return {m: (s.train, s.test) for m, s in DATASET_SPECS[name].modalities.items()}


def expected_dims(name: str) -> dict[str, int]:
    """Published feature dimension per modality of benchmark ``name``."""
    return {m: s.dim for m, s in DATASET_SPECS[name].modalities.items()}
