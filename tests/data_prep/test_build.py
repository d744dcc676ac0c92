"""The encoders both real-data builds share: text as given, speech and MFCC audio per clip in batches, info recorded."""

import types
from pathlib import Path

import numpy as np

from data_prep import digits10, tux12
from data_prep.build import SPEECH_BATCH
from data_prep.tuxdigits_common import Progress


def _fake_ex(calls):
    class TextEncoder:
        info = {"name": "fake-text"}

        def __init__(self, threads):
            calls.append(("text-threads", threads))

        def encode(self, texts):
            calls.append(("text", list(texts)))
            return np.array([[len(t)] for t in texts], np.float32)

    class SpeechEncoder:
        info = {"name": "fake-speech"}

        def __init__(self, cache):
            pass

        def encode_waves(self, waves):
            calls.append(("batch", len(waves)))
            return np.stack([w[:2] for w in waves])

    return types.SimpleNamespace(
        TextEncoder=TextEncoder, SpeechEncoder=SpeechEncoder, MFCC_INFO={"name": "mfcc"},
        load_audio=lambda p: np.full(3, float(Path(p).stem), np.float32),
        mfcc_stats=lambda w: w[:1] * 10,
    )


def test_both_builds_encode_text_speech_and_audio_alike(tmp_path):
    n = SPEECH_BATCH + 5
    paths = [tmp_path / f"{i}.ogg" for i in range(n)]
    stamps = [tux12.Stamp(f"s{i}", "c", p, f"caption {'x' * i}", p) for i, p in enumerate(paths)]
    clips = [digits10.Clip(f"c{i}", i % 10, p) for i, p in enumerate(paths)]
    words = [digits10.Word(f"{i}/en", i, "w" * (i + 1)) for i in range(3)]
    for cls, items, texts in ((tux12.Extractors, stamps, [s.caption for s in stamps]),
                              (digits10.Extractors, clips, None)):
        calls = []
        ext = cls(tmp_path, 2, Progress("t", quiet=True))
        ext.ex = _fake_ex(calls)
        speech, audio = ext.speech_and_audio(items)
        assert speech.shape == (n, 2) and np.array_equal(speech[:, 0], np.arange(n))   # row i is clip i
        assert np.array_equal(audio[:, 0], np.arange(n) * 10.0)
        assert [c for c in calls if c[0] == "batch"] == [("batch", SPEECH_BATCH), ("batch", 5)]
        text = ext.text(stamps if texts else words)
        assert ("text", texts or ["w", "ww", "www"]) in calls and ("text-threads", 2) in calls
        assert text.shape[0] == (n if texts else 3)
        assert ext.info["speech"] == {"name": "fake-speech"} and ext.info["text"] == {"name": "fake-text"}
        assert ext.info["audio"]["dim"] == 60                              # MFCC statistics, recorded up front
