"""--overwrite of the writing commands (export, index build) never replaces a folder whose manifest another program wrote."""

import pytest

from cvs_tf.cli.export import main as export_cli
from cvs_tf.cli.index import main as index_cli
from cvs_tf.utils.cli import run_cli
from tests.helpers import dir_tree, one_error_line


def _argv(command, tiny_export, out) -> list[str]:
    run, export, ds = tiny_export
    if command == "export":
        return [str(run), "--out", str(out), "--overwrite"]
    return ["build", str(export), "--features", str(ds), "--modality", "image", "--out", str(out), "--overwrite"]


MAINS = {"export": export_cli, "index": index_cli}


@pytest.mark.parametrize("command,files", [
    ("export", {"export.json": '{"hello": "my own file"}', "data.csv": "1,2"}),
    ("export", {"export.json": '{"format": "someone.else"}', "notes.txt": "mine"}),
    ("index", {"index.json": '{"hello": "my own file"}', "data.csv": "1,2"}),
    ("index", {"index.json": '{"format": "someone.else", "files": {}}', "notes.txt": "mine"}),
])
def test_overwrite_never_replaces_a_folder_whose_manifest_is_not_a_cvs_tf_one(tiny_export, tmp_path, capsys,
                                                                             command, files):
    """Was: any folder holding a file named export.json (index.json) was deleted with the user's other files."""
    out = tmp_path / "out"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    before = dir_tree(tmp_path)
    one_error_line(capsys, run_cli(MAINS[command], _argv(command, tiny_export, out)),
                   f"not an {command} written by cvs_tf", "refusing to replace it")
    assert dir_tree(tmp_path) == before
