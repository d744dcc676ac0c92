"""What ``import cvs_tf`` does first: register the Keras classes, or quiet TensorFlow's start-up lines for our CLIs.

* In a library process (a script, a notebook, ``python -c``, pytest) every Keras-serialisable
  class of cvs_tf is imported, hence registered, so ``keras.saving.load_model`` finds
  ``CVSModel``, ``MCVSModel``, ``RVSModel`` and their layers after a bare ``import cvs_tf``.
* In one of our own command-line modules (``python -m cvs_tf.train``, ``cvs_tf.evaluate``,
  ``cvs_tf.data``, ``cvs_tf.demo``, ``experiments``, ``experiments.baselines``, ``bench``,
  ``data_prep.*``) nothing heavy is imported here: the command imports what it needs (a cheap
  ``inspect`` or ``--help`` never starts TensorFlow). Unless ``--verbose`` is on the command
  line, TensorFlow's native start-up noise is silenced before TensorFlow is imported:
  ``TF_CPP_MIN_LOG_LEVEL=3`` (it silences the ``failed call to cuInit`` line printed at the
  first device query, the oneDNN and CPU-feature banners), and the native log lines written
  while ``tensorflow`` itself is first imported (the absl "before InitializeLog" banner and
  ``cudart_stub`` lines, printed by two copies of absl before any setting is read) are filtered
  out of stderr. ``CUDA_VISIBLE_DEVICES`` is never touched: GPUs keep working.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

OWN_PACKAGES = ("cvs_tf", "experiments", "bench", "data_prep")

# native (C++) log lines of the absl/TF formats, and the banner lines that carry no prefix
_NATIVE_LINE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\] "             # absl: I0000 00:00:17.. 123 f.cc:31]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w./-]+:\d+\] "        # older TF: 2024-.. : I f.cc:31]
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$)"
)


def cli_module(orig_argv: list[str] | None = None) -> str | None:
    """The module run with ``python -m MODULE`` when it belongs to this project, else None."""
    argv = list(sys.orig_argv if orig_argv is None else orig_argv)[1:]
    it = iter(argv)
    for arg in it:
        if arg == "--check-hash-based-pycs":
            next(it, None)
            continue
        if arg.startswith("--"):
            continue
        if arg == "-" or not arg.startswith("-"):
            return None                                   # a script or stdin
        for i, ch in enumerate(arg[1:]):                  # a cluster of short options, e.g. -u or -Bm
            rest = arg[i + 2:]
            if ch == "c":
                return None
            if ch == "m":
                module = rest or next(it, "")
                return module if module.split(".")[0] in OWN_PACKAGES else None
            if ch in "XW":
                if not rest:
                    next(it, None)
                break
    return None


def verbose_requested(orig_argv: list[str] | None = None) -> bool:
    """``--verbose`` among the command's own arguments."""
    return "--verbose" in list(sys.orig_argv if orig_argv is None else orig_argv)[1:]


def keras3_installed() -> bool:
    """Keras 3 is importable (the data-preparation and oracle environments have none, or Keras 2)."""
    try:
        if "keras" in sys.modules:
            return int(str(sys.modules["keras"].__version__).split(".")[0]) >= 3
        if importlib.util.find_spec("keras") is None:
            return False
        from importlib.metadata import version

        return int(version("keras").split(".")[0]) >= 3
    except Exception:  # no version or metadata (a source checkout): let the import decide
        return True


def register_serializables() -> bool:
    """Import every module that defines a ``register_keras_serializable`` class; False without Keras 3."""
    if not keras3_installed():
        return False
    import cvs_tf.layers  # noqa: F401  (ModalityBranch, AlignedAttention, RVSAttention, RVSReference)
    import cvs_tf.losses  # noqa: F401  (SemiHardTripletLoss, ClassificationLoss, ReconstructionLoss)
    import cvs_tf.models  # noqa: F401  (CVSModel, MCVSModel, RVSModel)

    return True


def drop_native_noise(text: str) -> str:
    """``text`` without TensorFlow's native start-up log lines (everything else is kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not _NATIVE_LINE.match(line.rstrip("\n")))


@contextlib.contextmanager
def filtered_stderr():
    """Capture file descriptor 2; on success write back all but the native log lines, on error all of it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):        # no usable stderr: nothing to filter
        yield
        return
    ok = False
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
            ok = True
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            keep = drop_native_noise(text) if ok else text
            if keep:
                os.write(2, keep.encode("utf-8", "replace"))


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader of ``tensorflow`` inside :func:`filtered_stderr`, then steps aside."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            with filtered_stderr():
                self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self.loader

    def __getattr__(self, name):  # resource readers and the like: the real loader's
        return getattr(self.loader, name)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the first import of ``tensorflow`` (and then removes itself)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_native_logs() -> None:
    """Silence TensorFlow's native start-up lines (call before TensorFlow is imported)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def on_import() -> None:
    """What ``import cvs_tf`` runs (see the module docstring)."""
    if cli_module() is not None:
        if not verbose_requested():
            quiet_native_logs()
    else:
        register_serializables()
