"""A writer through cvs_tf.utils.output for the kill -9 tests, run as a script: ``python output_writer.py TARGET TAG``.

It loads cvs_tf's writing modules without ``cvs_tf/__init__`` (no TensorFlow: a start costs well under a
second), writes TARGET with ``--overwrite`` semantics holding ``data.txt`` = TAG, and obeys
``$CVS_TF_FAULT_POINT`` like every command.
"""

import json
import sys
import types
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cvs_tf"


def kind():
    from cvs_tf.utils.output import OutputKind

    return OutputKind("thing", "thing.json", "test.thing", lambda manifest: manifest["files"])


def write(target, tag: str, *, overwrite: bool = True) -> None:
    from cvs_tf.utils.output import OutputDir

    with OutputDir(target, kind(), overwrite=overwrite) as out, out.build() as tmp:
        (tmp / "data.txt").write_text(tag)
        (tmp / "thing.json").write_text(json.dumps({"format": "test.thing", "files": ["data.txt"]}))


if __name__ == "__main__":
    light = types.ModuleType("cvs_tf")
    light.__path__ = [str(PACKAGE)]
    sys.modules["cvs_tf"] = light
    write(Path(sys.argv[1]), sys.argv[2])
