"""L16/μ-law/resampling/framing behaviour the gateway depends on, plus WAV file I/O."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from telephony.codecs import (
    CodecError,
    float_to_l16,
    frame_bytes,
    int16_to_float,
    int16_to_l16,
    iter_frames,
    l16_to_float,
    l16_to_int16,
    mulaw_decode,
    mulaw_encode,
    phone_line,
    resample,
    validate_l16,
)
from telephony.wav import read_wav, write_wav

pytestmark = pytest.mark.unit


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


# --- L16 -----------------------------------------------------------------------------


def test_odd_length_l16_is_rejected_with_a_clear_message():
    expected = "odd-length L16 frame: 321 bytes (16-bit PCM needs an even count)"
    with pytest.raises(CodecError) as info:
        l16_to_int16(b"\x00" * 321)
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError)
    with pytest.raises(CodecError, match="odd-length"):
        validate_l16(b"\x01")
    validate_l16(b"")  # empty is a valid (zero-sample) frame


def test_l16_is_little_endian_and_round_trips():
    assert l16_to_int16(b"\x01\x00\xff\xff\x00\x80").tolist() == [1, -1, -32768]
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    assert int16_to_l16(samples) == b"".join(
        int(s).to_bytes(2, "little", signed=True) for s in samples
    )
    assert l16_to_int16(int16_to_l16(samples)).tolist() == samples.tolist()


def test_int16_to_l16_refuses_float_samples():
    with pytest.raises(CodecError, match="float_to_l16"):
        int16_to_l16(np.zeros(4, dtype=np.float32))


def test_float_conversion_round_trips_and_clips():
    data = int16_to_l16(np.arange(-32768, 32768, 7, dtype=np.int16))
    as_float = l16_to_float(data)
    assert as_float.dtype == np.float32
    assert np.array_equal(int16_to_float(l16_to_int16(data)), as_float)  # arrays, as ASR gets them
    assert as_float.min() >= -1.0 and as_float.max() < 1.0
    assert float_to_l16(as_float) == data
    assert l16_to_int16(float_to_l16(np.array([1.5, -1.5, 0.5, np.nan]))).tolist() == [
        32767,
        -32768,
        16384,
        0,
    ]


# --- G.711 μ-law ---------------------------------------------------------------------


def test_mulaw_known_values():
    decoded = mulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F, 0x0F, 0x8F, 0x70, 0xF0]))
    assert decoded.dtype == np.int16
    assert decoded.tolist() == [-32124, 32124, 0, 0, -16764, 16764, -120, 120]
    encoded = mulaw_encode(np.array([0, 32767, -32768, 8, -8, 100, -100], dtype=np.int16))
    # G.191 takes a negative sample's magnitude as ~x (= |x| - 1), hence 0x73, not 0x72
    assert list(encoded) == [0xFF, 0x80, 0x00, 0xFE, 0x7E, 0xF2, 0x73]


def test_mulaw_every_code_survives_decode_then_encode():
    codes = bytes(range(256))
    again = mulaw_encode(mulaw_decode(codes))
    # 0x7F is G.711's "negative zero": it decodes to 0 like 0xFF, and 0 encodes to 0xFF
    assert [c for c in range(256) if again[c] != c] == [0x7F]
    assert again[0x7F] == 0xFF


def test_mulaw_keeps_speech_quality():
    x = tone(440, 8000, amplitude=12000)
    err = mulaw_decode(mulaw_encode(x)).astype(np.float64) - x
    snr = rms_db(x) - rms_db(err)
    assert snr > 35  # G.711 gives ~38 dB on a loud tone
    # wider ints are clipped, not wrapped
    assert mulaw_encode(np.array([70000, -70000])) == mulaw_encode(np.array([32767, -32768]))


def test_mulaw_matches_audioop_where_python_still_has_it():
    audioop = pytest.importorskip("audioop", reason="audioop was removed in Python 3.13")
    codes = bytes(range(256))
    assert mulaw_decode(codes).tolist() == np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2").tolist()
    # audioop rounds negative magnitudes one LSB differently from the ITU G.191
    # reference; non-negative samples must agree exactly
    positive = np.arange(0, 32768, dtype=np.int16)
    assert mulaw_encode(positive) == audioop.lin2ulaw(positive.astype("<i2").tobytes(), 2)


# --- resampling and framing ----------------------------------------------------------


@pytest.mark.parametrize("src", [8000, 16000, 48000])
@pytest.mark.parametrize("dst", [8000, 16000, 22050, 24000, 48000])
def test_resample_keeps_a_tone_and_the_duration(src, dst):
    x = tone(440, src)
    y = resample(x, src, dst)
    assert y.dtype == np.int16
    assert len(y) == dst  # one second in, one second out
    assert abs(dominant_hz(y, dst) - 440) <= 1.5
    assert abs(rms_db(y) - rms_db(x)) < 0.5


def test_resample_same_rate_is_a_no_op_and_float_stays_float():
    x = tone(440, 16000)
    assert resample(x, 16000, 16000) is x
    f = x.astype(np.float32) / 32768
    out = resample(f, 16000, 8000)
    assert out.dtype == np.float32 and len(out) == 8000


def test_resample_clips_overshoot_instead_of_wrapping():
    square = np.tile(np.r_[np.full(40, 32767), np.full(40, -32768)], 100).astype(np.int16)
    y = resample(square, 8000, 22050)
    exact = resample(square.astype(np.float64), 8000, 22050)
    assert exact.max() > 32767  # the filter rings past full scale...
    assert y.dtype == np.int16  # ...and the int16 result is clipped there, not wrapped
    assert np.abs(y - np.clip(exact, -32768, 32767)).max() <= 1


def test_frame_sizes():
    assert frame_bytes(8000, 20) == 320
    assert frame_bytes(16000, 20) == 640
    assert frame_bytes(16000, 30) == 960
    with pytest.raises(ValueError):
        frame_bytes(22050, 10)  # 220.5 samples


def test_iter_frames_yields_full_frames_only():
    data = bytes(range(256)) * 4  # 1024 bytes
    frames = list(iter_frames(data, 8000, 20))
    assert [len(f) for f in frames] == [320, 320, 320]
    assert b"".join(frames) == data[:960]
    with pytest.raises(CodecError):
        list(iter_frames(b"\x00" * 3, 8000, 20))


def test_phone_line_sounds_like_a_phone():
    voice_band = phone_line(tone(1000, 16000), 16000)
    hum = phone_line(tone(100, 16000), 16000)
    assert voice_band.dtype == np.int16 and len(voice_band) == 8000
    assert abs(rms_db(voice_band[800:]) - rms_db(tone(1000, 8000))) < 1.0
    assert rms_db(voice_band[800:]) - rms_db(hum[800:]) > 15  # below 300 Hz is cut
    # every sample is a μ-law level
    assert set(np.unique(voice_band)) <= set(mulaw_decode(bytes(range(256))).tolist())


# --- WAV files -----------------------------------------------------------------------


def test_wav_round_trip(tmp_path):
    x = tone(300, 8000, seconds=0.5)
    write_wav(tmp_path / "a.wav", x, 8000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000 and y.dtype == np.int16 and y.tolist() == x.tolist()


def test_read_wav_mixes_stereo_down(tmp_path):
    left = np.full(100, 1000, dtype=np.int16)
    right = np.full(100, 3000, dtype=np.int16)
    with wave.open(str(tmp_path / "s.wav"), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(16000)
        wf.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    mono, rate = read_wav(tmp_path / "s.wav")
    assert rate == 16000 and mono.tolist() == [2000] * 100


def test_read_wav_decodes_flac_at_16k(tmp_path):
    pytest.importorskip("faster_whisper")
    av = pytest.importorskip("av")
    x = tone(440, 8000, seconds=0.5)
    path = tmp_path / "a.flac"
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    y, rate = read_wav(path)
    assert rate == 16000 and y.dtype == np.int16
    assert abs(len(y) - 8000) <= 160
    assert abs(dominant_hz(y, 16000) - 440) <= 3
