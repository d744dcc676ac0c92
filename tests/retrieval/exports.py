"""Shared helper of the retrieval tests: an export of an untrained CVS over a feature set."""

from cvs_tf.serving import export_model


def make_export(path, fs, seed):
    """Export an untrained CVS (no attention) over ``fs``: plumbing needs weights, not training."""
    import keras

    from cvs_tf.models import CVSModel

    keras.utils.set_random_seed(seed)
    model = CVSModel({m: fs.dim(m) for m in fs.modalities}, fs.num_classes, attention=False, dim=16)
    return export_model(model, path, dataset=fs, run_config={"seed": seed}, run_name=f"untrained-{seed}")
