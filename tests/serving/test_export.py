"""`python -m cvs_tf.export` and cvs_tf.serving.Export: artifacts served by TensorFlow alone equal model.embed."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.cli.export import main as export_cli
from cvs_tf.serving import Export, ExportError, export_model
from cvs_tf.serving import export as export_mod
from cvs_tf.training.run_dir import load_run
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset, write_small_config

pytestmark = pytest.mark.trains

REPO = Path(__file__).resolve().parents[2]

#: (space, extra train flags, stage to export): CVS, a later M-CVS stage, RVS's last stage
CASES = {"cvs": ([], None), "mcvs": ([], 2), "rvs": (["--reference", "image"], None)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``trained(space) -> (run_dir, export_dir)``: a tiny run of that space, trained and exported once.

    The fast lane uses M-CVS only (its later stage, and stage 1); CVS and RVS train in the slow lane.
    """
    from cvs_tf.cli.train import main as train

    tmp = tmp_path_factory.mktemp("export")
    ds = make_toy_featureset(tmp / "ds")
    cfg = write_small_config(tmp / "small.json")
    cache = {}

    def get(space):
        if space not in cache:
            flags, stage = CASES[space]
            run = tmp / f"run-{space}"
            train(["--space", space, *flags, "--dataset", str(ds), "--config", str(cfg), "--epochs", "1",
                   "--batch-size", "8", "--steps-per-epoch", "1", "--no-jit", "--quiet", "--out", str(run)])
            exp = tmp / f"export-{space}"
            argv = [str(run), "--out", str(exp)] + (["--stage", str(stage)] if stage else [])
            assert export_cli(argv) == 0
            cache[space] = (run, exp)
        return cache[space]

    return get


SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import tensorflow as tf
    jobs = json.loads(Path(sys.argv[1]).read_text())
    for job in jobs:
        for m, entry in json.loads((Path(job["export"]) / "export.json").read_text())["modalities"].items():
            x = np.load(job["inputs"][m])
            loaded = tf.saved_model.load(str(Path(job["export"]) / entry["savedmodel"]))
            np.save(job["outputs"][m] + ".serve.npy", loaded.serve(x).numpy())
            sig = loaded.signatures[entry["signature"]]
            np.save(job["outputs"][m] + ".sig.npy", sig(**{entry["input"]: tf.constant(x)})[entry["output"]].numpy())
    assert not any(k == "cvs_tf" or k.startswith("cvs_tf.") for k in sys.modules), "cvs_tf was imported"
    print("ok")
""")


def check_served_by_tensorflow_alone(trained, spaces, tmp_path):
    """One subprocess that imports only TensorFlow loads every exported signature of ``spaces``; each
    output equals ``model.embed`` to 1e-6."""
    jobs, expected = [], {}
    rng = np.random.default_rng(1)
    for space in spaces:
        run, exp = trained(space)
        model, fs, _ = load_run(run, stage=CASES[space][1])
        job = {"export": str(exp), "inputs": {}, "outputs": {}}
        for m in model.modalities:
            x = np.concatenate([np.asarray(fs.x(m, "test")), rng.normal(size=(5, fs.dim(m)))]).astype(np.float32)
            np.save(tmp_path / f"{space}-{m}.in.npy", x)
            job["inputs"][m] = str(tmp_path / f"{space}-{m}.in.npy")
            job["outputs"][m] = str(tmp_path / f"{space}-{m}")
            expected[(space, m)] = model.embed(m, x).numpy()
        jobs.append(job)
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "serve.py").write_text(SERVE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(tmp_path / "jobs.json")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert {s for s, _ in expected} == set(spaces)
    for (space, m), want in expected.items():
        for kind in ("serve", "sig"):
            got = np.load(tmp_path / f"{space}-{m}.{kind}.npy")
            assert got.shape == want.shape == (want.shape[0], 16) and got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=1e-6, rtol=0, err_msg=f"{space} {m} {kind}")
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    return expected


def test_mcvs_later_stage_served_by_tensorflow_alone_equals_model_embed(trained, tmp_path):
    expected = check_served_by_tensorflow_alone(trained, ["mcvs"], tmp_path)
    assert sorted(m for _, m in expected) == ["audio", "image", "text"]      # audio: added in stage 2


@pytest.mark.slow
def test_cvs_and_rvs_served_by_tensorflow_alone_equal_model_embed(trained, tmp_path):
    check_served_by_tensorflow_alone(trained, ["cvs", "rvs"], tmp_path)


@pytest.mark.parametrize("space", ["mcvs", pytest.param("cvs", marks=pytest.mark.slow),
                                   pytest.param("rvs", marks=pytest.mark.slow)])
def test_export_json_names_modalities_dims_stage_config_and_manifest(trained, space):
    run, exp = trained(space)
    model, fs, config = load_run(run, stage=CASES[space][1])
    man = json.loads((exp / "export.json").read_text())
    assert man["format"] == "cvs_tf.export" and man["space"] == space
    assert man["modality_order"] == model.modalities == Export(exp).modalities
    assert {m: e["input_dim"] for m, e in man["modalities"].items()} == {m: fs.dim(m) for m in model.modalities}
    assert man["dim"] == 16 and man["stage"] == model.current_stage + 1 == (CASES[space][1] or model.num_stages)
    assert man["run"]["config"] == config
    assert man["dataset"]["manifest_sha256"] == fs.manifest_sha256 == config["resolved"]["dataset_manifest_sha256"]
    assert man["dataset"]["classes"] == fs.classes
    assert man["check"]["max_abs_diff"] <= 1e-6
    if space == "mcvs":
        assert man["stage_name"] == "2-audio"


def test_earlier_stage_exports_only_its_modalities(trained, tmp_path):
    run, _ = trained("mcvs")
    assert export_cli([str(run), "--out", str(tmp_path / "s1"), "--stage", "1"]) == 0
    exp = Export(tmp_path / "s1")
    assert exp.modalities == ["image", "text"] and exp.stage == 1
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == ["MODEL_CARD.md", "export.json", "image", "text"]
    # stage 1 and stage 2 share the frozen image branch: same weights hash, different export identity
    later = Export(trained("mcvs")[1])
    assert exp.manifest["modalities"]["image"]["weights_sha256"] == later.manifest["modalities"]["image"]["weights_sha256"]
    assert exp.sha256 != later.sha256


def test_export_embed_matches_model_and_checks_its_input(trained):
    run, exp_dir = trained("mcvs")
    model, fs, _ = load_run(run)
    exp = Export(exp_dir)
    x = fs.x("text", "test")
    np.testing.assert_allclose(exp.embed("text", x, batch_size=5), model.embed("text", x).numpy(), atol=1e-6, rtol=0)
    assert exp.embed("text", np.asarray(x[0])).shape == (1, 16)            # one vector = one row
    with pytest.raises(ExportError, match="dimension 3; the export expects 12"):
        exp.embed("text", np.zeros((2, 3), np.float32))
    with pytest.raises(ExportError, match="no modality 'video'"):
        exp.embed("video", np.zeros((2, 3), np.float32))
    bad = np.array(x[:2], dtype=np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(ExportError, match="NaN"):
        exp.embed("text", bad)


@pytest.mark.parametrize("argv,needle", [
    (["{missing}", "--out", "{new}"], "no such run directory"),
    (["{run}", "--out", "{new}", "--stage", "9"], "no finished stage 9"),
    (["{run}", "--out", "{new}", "--stage", "0"], "--stage: must be in [1, 1000], got 0"),
    (["{run}", "--out", "{full}"], "exists and is not empty"),
    (["{run}", "--out", "{full}", "--overwrite"], "not an export written by cvs_tf"),
    (["{run}", "--out", "{new}", "--format", "tflite"], "invalid choice"),
    (["{run}"], "--out"),
])
def test_errors_are_one_line_exit_2_and_write_nothing(trained, tmp_path, capsys, argv, needle):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    subst = {"{missing}": str(tmp_path / "nope"), "{run}": str(trained("mcvs")[0]), "{new}": str(tmp_path / "new"),
             "{full}": str(tmp_path / "full")}
    assert run_cli(export_cli, [subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_onnx_without_tf2onnx_says_so_in_one_line(trained, tmp_path, capsys, monkeypatch):
    from cvs_tf.serving import onnx as onnx_mod

    real = onnx_mod.importlib.util.find_spec
    monkeypatch.setattr(onnx_mod.importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    assert run_cli(export_cli, [str(trained("mcvs")[0]), "--out", str(tmp_path / "o"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs tf2onnx, which is not installed" in err[0]
    assert not (tmp_path / "o").exists()


def test_failed_export_leaves_no_output_and_keeps_the_old_one(trained, tmp_path, monkeypatch):
    run, _ = trained("mcvs")
    model, fs, config = load_run(run)
    out = tmp_path / "exp"
    export_model(model, out, dataset=fs, run_config=config)
    before = (out / "export.json").read_bytes()
    calls = []

    def broken(model, modality, path):
        calls.append(modality)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(model, modality, path)

    real = export_mod._write_savedmodel
    monkeypatch.setattr(export_mod, "_write_savedmodel", broken)
    with pytest.raises(OSError, match="disk full"):
        export_model(model, out, dataset=fs, run_config=config, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        calls.clear()
        export_model(model, tmp_path / "fresh", dataset=fs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]          # no temp dirs, no partial export
    assert (out / "export.json").read_bytes() == before


def test_overwrite_replaces_an_export(trained, tmp_path):
    run, _ = trained("mcvs")
    out = tmp_path / "exp"
    assert export_cli([str(run), "--out", str(out)]) == 0
    sha = Export(out).sha256
    assert export_cli([str(run), "--out", str(out), "--overwrite"]) == 0
    assert Export(out).sha256 == sha                                        # same run: same identity
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_loading_a_broken_export_is_one_clear_error(trained, tmp_path):
    import shutil

    with pytest.raises(ExportError, match="no such export directory"):
        Export(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="export.json: missing"):
        Export(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(trained("mcvs")[1], bad)
    (bad / "export.json").write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        Export(bad)
    gone = tmp_path / "gone"
    shutil.copytree(trained("mcvs")[1], gone)
    shutil.rmtree(gone / "text")
    with pytest.raises(ExportError, match="missing SavedModel"):
        Export(gone).embed("text", np.zeros((1, 12), np.float32))


def test_onnx_export_equals_the_savedmodel(trained, tmp_path):
    """Only where tf2onnx and onnxruntime are installed (not dependencies of cvs_tf)."""
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    run, _ = trained("mcvs")
    assert export_cli([str(run), "--out", str(tmp_path / "o"), "--format", "onnx"]) == 0
    exp = Export(tmp_path / "o")
    assert exp.manifest["formats"] == ["savedmodel", "onnx"]
    x = np.random.default_rng(0).normal(size=(9, exp.input_dim("audio"))).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "o" / exp.manifest["modalities"]["audio"]["onnx"]))
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, exp.embed("audio", x), atol=1e-6, rtol=0)
