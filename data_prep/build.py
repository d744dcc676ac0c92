"""What the Tux-12 and Digits-10 builds share: the lazily loaded encoders, and the last step (compare, write, report)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from cvs_tf.data.store import save_feature_set
from data_prep import tuxdigits_common as common

SPEECH_BATCH = 48  # clips per Whisper call


class BaseExtractors:
    """The real encoders, loaded lazily on first use; ``info`` collects what each one was (for provenance).

    A build subclasses it with one method per modality taking its own items; a test may pass an
    object with the same methods instead.
    """

    def __init__(self, cache: Path, threads: int, log: common.Progress):
        from data_prep import extractors as ex

        self.ex = ex
        self.cache, self.threads, self.log = cache, threads, log
        self.info: dict[str, dict] = {"audio": ex.MFCC_INFO}

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM sentence embeddings of ``texts``."""
        enc = self.ex.TextEncoder(self.threads)
        self.info["text"] = enc.info
        return enc.encode(list(texts))

    def encode_speech_and_audio(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
        """Whisper speech embeddings and MFCC statistics of the audio files ``paths``, loaded a batch at a time."""
        enc = self.ex.SpeechEncoder(self.cache)
        self.info["speech"] = enc.info
        speech, audio = [], []
        for i in range(0, len(paths), SPEECH_BATCH):
            waves = [self.ex.load_audio(p) for p in paths[i:i + SPEECH_BATCH]]
            speech.append(enc.encode_waves(waves))
            audio.extend(self.ex.mfcc_stats(w) for w in waves)
            self.log(f"speech {min(i + SPEECH_BATCH, len(paths))}/{len(paths)}")
        return np.concatenate(speech), np.stack(audio)


def publish(args, name: str, data: dict, classes: list[str], *, pairing: str, provenance: Mapping,
            val_fraction: float, log: Callable[[str], None]) -> int:
    """Write ``data`` (with its ``item_ids`` entry) at ``args.out``; exit status 0, or 1 when the
    set differs from ``args.compare`` beyond float16 rounding (the set is written either way)."""
    ok, report = True, []
    if args.compare:
        ok, report = common.compare_feature_sets(data, args.compare, subset=args.limit is not None)
    item_ids = data.pop("item_ids")
    validation = {"fraction": val_fraction, "seed": args.seed, "stratified": True, "carved_from": "train",
                  "paired": pairing == "instance"}
    out = save_feature_set(args.out, name, data, classes, pairing=pairing, provenance=dict(provenance),
                           validation=validation, feature_dtype="float16",
                           extra={"item_ids": item_ids}, overwrite=args.overwrite)
    log(f"wrote {out}")
    for line in report:
        print(f"compare: {line}")
    if args.compare:
        print(f"compare with {args.compare}: {'equal within float16 rounding' if ok else 'MISMATCH'}")
    return 0 if ok else 1
