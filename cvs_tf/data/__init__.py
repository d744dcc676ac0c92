"""Data: the feature-set store, dataset resolution, synthetic stand-ins and tf.data pipelines."""

from cvs_tf.data.registry import DEFAULT_DATASET, dataset_path, load_dataset
from cvs_tf.data.store import FeatureSet, FeatureSetError, load_feature_set, save_feature_set

__all__ = [
    "DEFAULT_DATASET",
    "FeatureSet",
    "FeatureSetError",
    "dataset_path",
    "load_dataset",
    "load_feature_set",
    "save_feature_set",
]
