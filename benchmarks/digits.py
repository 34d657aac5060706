"""Spoken digits over a phone line: the ASR path a digit-expecting turn uses.

    python benchmarks/digits.py --data ../shared/datasets/speech/fsdd_digits_dev

DIR holds `manifest.tsv` (path, reference_text, digit, speaker, sample_rate, …) and the
clips it names, shaped like `fsdd_digits_dev`. Each clip is read at its own rate,
resampled to 16 kHz as the media gateway does, and transcribed by the ASR engine with
the turn's expectation (`--length 1`: a state that asks for one digit, as a menu does;
`--length 0`: any number of digits). `--free` also measures plain transcription (what
a turn without an expectation hears). Prints a human line, then one JSON line with
`accuracy` last.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bots.slots import SlotSpec, slot_value  # noqa: E402
from configs.settings import ASRSettings  # noqa: E402
from deployments.engines.asr import WhisperTranscriber  # noqa: E402
from telephony.codecs import int16_to_float, resample  # noqa: E402
from telephony.wav import read_wav  # noqa: E402


def load_clips(folder: Path) -> list[tuple[np.ndarray, str, str]]:
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        raise SystemExit(f"error: {manifest} not found (a folder shaped like fsdd_digits_dev)")
    clips = []
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            audio, rate = read_wav(folder / row["path"])
            audio = int16_to_float(audio) if audio.dtype != np.float32 else audio
            reference = row.get("digit") or slot_value(SlotSpec(kind="digits"), row["reference_text"])
            clips.append((resample(audio, rate, 16_000).astype(np.float32), str(reference),
                          row.get("speaker", "")))
    return clips


def measure_pins(engine: WhisperTranscriber, clips, count: int) -> dict:
    rng = np.random.default_rng(0)
    by_speaker: dict[str, list] = {}
    for audio, reference, speaker in clips:
        by_speaker.setdefault(speaker, []).append((audio, reference))
    speakers, gap = sorted(by_speaker), np.zeros(2400, np.float32)
    spec, plain, expected = SlotSpec(kind="digits", length=4), 0, 0
    for i in range(count):
        own = by_speaker[speakers[i % len(speakers)]]
        picked = [own[j] for j in rng.choice(len(own), 4, replace=False)]
        audio = np.concatenate([part for a, _ in picked for part in (a, gap)])
        pin = "".join(ref for _, ref in picked)
        plain += slot_value(spec, engine.transcribe(audio).text) == pin
        expected += slot_value(spec, engine.transcribe_expecting(audio, spec).text) == pin
    return {"pins": count, "pin_accuracy_plain": round(plain / count, 4),
            "pin_accuracy_expected": round(expected / count, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with manifest.tsv")
    parser.add_argument("--length", type=int, default=1,
                        help="digits the state expects (0 = any length); default 1")
    parser.add_argument("--model", default="tiny.en", help="whisper model (default tiny.en)")
    parser.add_argument("--beam", type=int, default=2, help="beam size (default 2, as served)")
    parser.add_argument("--free", action="store_true", help="also measure plain transcription")
    parser.add_argument("--pins", type=int, default=0,
                        help="also N four-digit PINs: four clips of one speaker joined with "
                        "0.15 s gaps, heard plainly and with a 4-digit expectation")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache"))
    args = parser.parse_args(argv)

    clips = load_clips(args.data)
    settings = ASRSettings(model=args.model, beam_size=args.beam, cpu_threads=2, workers=1)
    engine = WhisperTranscriber(settings, args.cache_dir, device="cpu")
    spec = SlotSpec(kind="digits", length=args.length) if args.length else SlotSpec(kind="digits")
    result: dict = {"clips": len(clips), "model": args.model, "beam": args.beam,
                    "expect": spec.model_dump(exclude_defaults=True)}
    if args.free:
        right = sum(slot_value(spec, engine.transcribe(a).text) == ref for a, ref, _ in clips)
        result["free_accuracy"] = round(right / len(clips), 4)
    if args.pins:
        result |= measure_pins(engine, clips, args.pins)
    right, wrong_by_speaker, started = 0, {}, time.perf_counter()
    for audio, reference, speaker in clips:
        heard = slot_value(spec, engine.transcribe_expecting(audio, spec).text)
        right += heard == reference
        if heard != reference:
            wrong_by_speaker[speaker] = wrong_by_speaker.get(speaker, 0) + 1
    seconds = time.perf_counter() - started
    result |= {"wrong_by_speaker": wrong_by_speaker,
               "ms_per_clip": round(seconds / len(clips) * 1000, 1),
               "accuracy": round(right / len(clips), 4)}
    free = f", plain transcription {result['free_accuracy']:.1%}" if args.free else ""
    if args.pins:
        free += (f"; 4-digit PINs {result['pin_accuracy_expected']:.1%} "
                 f"(plain {result['pin_accuracy_plain']:.1%})")
    print(f"{result['accuracy']:.1%} of {len(clips)} spoken digits right with the digit "
          f"expectation{free} ({result['ms_per_clip']:.0f} ms per clip)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
