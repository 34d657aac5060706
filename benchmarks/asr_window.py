"""ASR encoder window: word error rate and time per utterance for whisper's fixed 30 s window
against windows sized to the utterance (`asr.min_window_s`), on the real speech clips in
../shared/datasets/speech (LibriVox, LibriSpeech, LJ Speech, spoken digits).

    python benchmarks/asr_window.py                     # 30 s vs min 10/15/20 s, tiny.en
    python benchmarks/asr_window.py --windows 30 20 --batch 8 --json

Each clip is transcribed alone (what one caller waits for) and, with --batch N, in batches
of N (what a busy replica does). Corpus WER uses the same normalisation as
tests/models/test_asr.py (deployments/engines/asr_metrics.py: lower case, punctuation
dropped, titles as spoken, numbers as written).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.settings import ASRSettings  # noqa: E402
from deployments.engines.asr import WhisperTranscriber  # noqa: E402
from deployments.engines.asr_metrics import normalise_words, word_edits  # noqa: E402

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "speech"
SETS = ("librivox_pocketsphinx_5utt", "librispeech_test-clean_4utt", "ljspeech_32utt",
        "fsdd_digits_dev")


def load_clips(limit_digits: int) -> list[tuple[str, object, str]]:
    from faster_whisper import decode_audio

    clips = []
    for name in SETS:
        manifest = SPEECH / name / "manifest.tsv"
        if not manifest.is_file():
            continue
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if name.startswith("fsdd"):
            rows = rows[:limit_digits]
        for row in rows:
            text = row.get("normalized_text") or row["reference_text"]
            clips.append((name, decode_audio(str(SPEECH / name / row["path"]), sampling_rate=16000), text))
    return clips


def measure(engine: WhisperTranscriber, clips, batch: int) -> dict:
    engine.warmup()
    errors = words = 0
    per_set: dict[str, list[int]] = {}
    alone_ms = []
    for name, audio, ref in clips:
        started = time.perf_counter()
        text = engine.transcribe(audio).text
        alone_ms.append((time.perf_counter() - started) * 1000)
        e, n = word_edits(normalise_words(ref), normalise_words(text)), len(normalise_words(ref))
        errors, words = errors + e, words + n
        counts = per_set.setdefault(name, [0, 0])
        counts[0] += e
        counts[1] += n
    out = {
        "wer": round(errors / max(words, 1), 4),
        "wer_per_set": {k: round(e / max(n, 1), 4) for k, (e, n) in per_set.items()},
        "alone_ms_p50": round(statistics.median(alone_ms), 1),
        "alone_ms_mean": round(statistics.fmean(alone_ms), 1),
    }
    if batch > 1:
        audios = [a for _, a, _ in clips]
        started = time.perf_counter()
        for i in range(0, len(audios), batch):
            engine.transcribe_batch(audios[i : i + batch])
        out[f"batch{batch}_ms_per_clip"] = round((time.perf_counter() - started) * 1000 / len(audios), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--windows", type=float, nargs="+", default=[30, 20, 15, 10],
                        help="minimum window seconds to compare (30 = whisper's fixed window)")
    parser.add_argument("--batch", type=int, default=8, help="also time batches of N (1 = off)")
    parser.add_argument("--digits", type=int, default=20, help="spoken-digit clips to include")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=2, help="beam size (configs/default.yaml: 2)")
    parser.add_argument("--cache-dir", default="var/models")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args()

    clips = load_clips(args.digits)
    if not clips:
        print(f"no speech clips under {SPEECH}", file=sys.stderr)
        return 2
    results = {}
    for window in args.windows:
        settings = ASRSettings(model=args.model, beam_size=args.beam, cpu_threads=args.threads,
                               workers=1, busy_window_s=None,
                               min_window_s=None if window >= 30 else window)
        engine = WhisperTranscriber(settings, Path(args.cache_dir), device="cpu")
        label = "fixed_30s" if window >= 30 else f"min_{window:g}s"
        results[label] = measure(engine, clips, args.batch)
        r = results[label]
        print(f"{label:>10}: WER {r['wer']:.3f}  alone p50 {r['alone_ms_p50']:.0f} ms  "
              + (f"batch of {args.batch}: {r.get(f'batch{args.batch}_ms_per_clip', 0):.0f} ms/clip  "
                 if args.batch > 1 else "")
              + "  ".join(f"{k.split('_')[0]} {v:.3f}" for k, v in r["wer_per_set"].items()),
              file=sys.stderr)
    print(json.dumps({
        "benchmark": "asr_window", "model": args.model, "beam_size": args.beam, "clips": len(clips),
        "machine": f"{platform.machine()} {psutil.cpu_count()} cpu(s), {args.threads} threads",
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
