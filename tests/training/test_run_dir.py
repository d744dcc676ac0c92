"""Run directories: config.json type checks, finding the dataset again by path/name/sha256, restartable failed starts."""

import json
import shutil

import pytest

from cvs_tf.config import RunConfig
from cvs_tf.data.registry import find_dataset
from cvs_tf.data.store import FeatureSetError, load_feature_set
from cvs_tf.training.checkpoint import Checkpoint
from cvs_tf.training.run_dir import (
    RunDirError,
    clear_failed_start,
    is_restartable,
    locate_dataset,
    read_run_config,
)
from tests.helpers import make_toy_featureset


def _config(ds, **resolved):
    cfg = RunConfig()
    cfg.train.dataset = "toyset"
    fs = load_feature_set(ds)
    return {**cfg.to_dict(), "resolved": {"package_version": "0", "dataset_name": fs.name,
                                         "dataset_dir": str(ds.resolve()),
                                         "dataset_manifest_sha256": fs.manifest_sha256, **resolved}}


@pytest.fixture
def ds(tmp_path):
    return make_toy_featureset(tmp_path / "data" / "toyset", modalities={"image": 4, "text": 3})


def test_find_dataset_by_path_then_name_and_sha256(ds, tmp_path, monkeypatch):
    sha = load_feature_set(ds).manifest_sha256
    fs, where = find_dataset(sha, path=ds, names=["toyset"])
    assert where == ds and fs.manifest_sha256 == sha
    moved = tmp_path / "store" / "toyset"
    moved.parent.mkdir()
    shutil.move(ds, moved)
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    with pytest.raises(FeatureSetError, match="not found"):
        find_dataset(sha, path=ds, names=["toyset"])
    monkeypatch.setenv("CVS_TF_DATA", str(moved.parent))
    assert find_dataset(sha, path=ds, names=["toyset"])[1] == moved
    make_toy_featureset(ds, seed=4, modalities={"image": 4, "text": 3})  # another set at the old path: skipped
    assert find_dataset(sha, path=ds, names=["toyset"])[1] == moved
    shutil.rmtree(moved)
    other = load_feature_set(ds).manifest_sha256
    with pytest.raises(FeatureSetError) as exc:
        find_dataset(sha, path=ds, names=["toyset"])
    assert sha in str(exc.value) and other in str(exc.value)


def test_read_run_config_and_locate(ds, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_config(ds)))
    cfg, resolved = read_run_config(run)
    assert cfg.train.dataset == "toyset" and resolved["dataset_dir"] == str(ds.resolve())
    assert locate_dataset(cfg, resolved)[1] == ds.resolve()


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected an object"),
    (json.dumps({"model": {}}), "resolved"),
    (json.dumps({"train": 3, "resolved": {"dataset_manifest_sha256": "x"}}), "train"),
    (json.dumps({"resolved": {"dataset_manifest_sha256": 5}}), "resolved.dataset_manifest_sha256"),
    (json.dumps({"resolved": {"dataset_manifest_sha256": "x", "dataset_dir": 3}}), "resolved.dataset_dir"),
    (json.dumps({"train": {"lr": "fast"}, "resolved": {"dataset_manifest_sha256": "x"}}), "lr"),
])
def test_read_run_config_errors_name_the_file_and_field(tmp_path, text, needle):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(RunDirError) as exc:
        read_run_config(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / "config.json") in msg and needle in msg and "\n" not in msg


def test_restartable_only_for_a_cvs_tf_start_without_completed_work(ds, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_config(ds)))
    (run / ".lock").write_text("")
    (run / ".checkpoint.tmp").mkdir()
    assert is_restartable(run)
    clear_failed_start(run)
    assert [p.name for p in run.iterdir()] == [".lock"]
    for extra in ("checkpoint", "stages", "metrics.json", "history.json", "notes.txt", ".checkpoint.old"):
        (run / "config.json").write_text(json.dumps(_config(ds)))
        target = run / extra
        target.mkdir() if "." not in extra or extra.startswith(".") else target.write_text("{}")
        assert not is_restartable(run), extra
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (run / "config.json").write_text('{"mine": true}')
    assert not is_restartable(run)


def test_checkpoint_recovers_from_a_kill_between_its_renames(tmp_path):
    old = tmp_path / ".checkpoint.old"
    old.mkdir()
    (old / "state.json").write_text("{}")
    Checkpoint(tmp_path).recover()
    assert (tmp_path / "checkpoint" / "state.json").is_file() and not old.exists()
