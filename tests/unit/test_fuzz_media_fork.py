"""Fuzzing the media-fork parsers with what a broken or hostile peer could send.

The contract (telephony/media_fork.py): every parser either returns its result or raises
`ProtocolError` with a short reason and a close code the gateway puts on the wire, in
bounded time; `parse_transfer` never raises (the call must reach a person). The reason
never repeats the caller's number. Each bug the fuzzing found has a plain regression test
at the end.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony import media_fork
from telephony.call_data import DEFAULT_HANDOVER_REASON, Handover
from telephony.media_fork import (
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    SAMPLE_RATES,
    ForkMetadata,
    ProtocolError,
    check_audio_frame,
    parse_metadata,
    parse_module_text,
    parse_server_text,
    parse_transfer,
)

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=100, deadline=1000, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CLOSE_CODES = {media_fork.CLOSE_PROTOCOL_ERROR, media_fork.CLOSE_INVALID_PAYLOAD,
               media_fork.CLOSE_POLICY, media_fork.CLOSE_TOO_BIG}
CALL_UUID = "0b9c5f2e-3a41-4d7e-9d0f-4b1f6a2c7e10"
CALLER = "+15557654321"

# ---- strategies ---------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20,
)
ODD_IDS = st.sampled_from(["x\n", "x\r", "x\x00", "", "a" * 129, "a b", "é", "x\u2028"])


@st.composite
def metadata_docs(draw) -> str:
    """Metadata that is nearly right: each field usually valid, sometimes odd."""
    def field(good, odd=ODD_IDS | json_values):
        return draw(odd) if draw(st.integers(0, 5)) == 0 else draw(good)

    doc = {"callId": draw(st.sampled_from([CALL_UUID, "call-1"]) | ODD_IDS),
           "sampleRate": field(st.sampled_from(SAMPLE_RATES),
                               st.sampled_from([8000.0, True, "8000", 44100]) | json_values)}
    for key, good in (("from", st.just(CALLER)), ("to", st.just("+15550100")),
                      ("direction", st.sampled_from(["inbound", "outbound"])),
                      ("campaign", st.just("spring")), ("lead", st.just("L1")),
                      ("playback", st.sampled_from(["binary", "playAudio"])),
                      ("mixType", st.just("mono")), ("customer", st.just({"name": "Ada"}))):
        if draw(st.booleans()):
            doc[key] = field(good)
    doc.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return json.dumps(doc)


@st.composite
def hostile_json(draw) -> str:
    """Shapes that break naive decoders: deep nesting, long numbers, non-finite numbers."""
    kind = draw(st.sampled_from(["deep", "number", "float", "constant", "escape"]))
    n = draw(st.integers(1, 40) | st.integers(900, 6000))  # around the limits Python has
    if kind == "deep":
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        return '{"callId":"c","x":' + opener * n + "1" + closer * n + "}"
    if kind == "number":
        return '{"callId":"c","sampleRate":' + "9" * n + "}"
    if kind == "float":
        return '{"callId":"c","sampleRate":1' + draw(st.sampled_from(["e", ".5e", "e-"])) + \
            "9" * min(n, 400) + "}"
    if kind == "constant":
        return '{"callId":"c","x":' + draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])) + "}"
    return '{"callId":"c","from":"' + "\\ud800" * min(n, 100) + '"}'


peer_text = st.text() | metadata_docs() | hostile_json() | json_values.map(json.dumps)
peer_bytes = st.binary() | peer_text.map(lambda t: t.encode("utf-8", "surrogatepass"))


def assert_protocol_error(err: ProtocolError) -> None:
    assert isinstance(err.reason, str) and 0 < len(err.reason) <= 120
    assert err.close_code in CLOSE_CODES
    assert CALLER not in err.reason  # a number never goes into a close reason (it is logged)


def timed(fn, *args):
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        assert time.perf_counter() - started < 0.5


# ---- module -> server ---------------------------------------------------------------------


@FUZZ
@given(data=peer_text | peer_bytes, url_uuid=st.none() | st.just(CALL_UUID))
def test_metadata_is_parsed_or_refused_with_a_protocol_error(data, url_uuid) -> None:
    check_metadata(data, url_uuid)


@FUZZ
@given(data=metadata_docs(), url_uuid=st.none() | st.just(CALL_UUID))
def test_nearly_right_metadata_is_parsed_or_refused(data, url_uuid) -> None:
    check_metadata(data, url_uuid)


@FUZZ
@given(data=hostile_json())
def test_hostile_json_is_refused_by_every_parser_in_bounded_time(data) -> None:
    for parse in (parse_metadata, parse_module_text, parse_server_text):
        try:
            timed(parse, data)
        except ProtocolError as err:
            assert_protocol_error(err)
    assert isinstance(timed(parse_transfer, data), Handover)


def check_metadata(data, url_uuid) -> None:
    try:
        meta = timed(parse_metadata, data, url_uuid)
    except ProtocolError as err:
        assert_protocol_error(err)
        return
    assert isinstance(meta, ForkMetadata)
    assert media_fork._CALL_UUID.fullmatch(meta.call_uuid)
    assert type(meta.sample_rate) is int and meta.sample_rate in SAMPLE_RATES
    assert url_uuid is None or meta.call_uuid == url_uuid
    json.dumps(meta.customer).encode("utf-8")  # storable as it came


@FUZZ
@given(call_uuid=st.from_regex(r"[A-Za-z0-9_.:-]{1,128}", fullmatch=True),
       rate=st.sampled_from(SAMPLE_RATES),
       caller=st.none() | st.text(max_size=20),
       campaign=st.none() | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
       customer=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_metadata_we_build_parses_back_the_same(call_uuid, rate, caller, campaign,
                                                customer) -> None:
    meta = ForkMetadata(call_uuid, rate, caller=caller, campaign=campaign, customer=customer)
    assert parse_metadata(meta.to_json(), call_uuid) == meta


@FUZZ
@given(text=peer_text)
def test_module_text_frames_are_parsed_or_refused(text) -> None:
    try:
        event = timed(parse_module_text, text)
    except ProtocolError as err:
        assert_protocol_error(err)
        return
    assert event is None or isinstance(event, media_fork.MarkEvent | media_fork.DtmfEvent)


@FUZZ
@given(data=st.binary(max_size=4096), max_bytes=st.integers(0, 20000),
       rate=st.sampled_from(SAMPLE_RATES))
def test_audio_frames_are_accepted_only_whole_and_within_the_limit(data, max_bytes,
                                                                   rate) -> None:
    try:
        check_audio_frame(data, rate, max_bytes)
    except ProtocolError as err:
        assert_protocol_error(err)
        assert len(data) % 2 or len(data) > max_bytes
        return
    assert len(data) % 2 == 0 and len(data) <= max_bytes


@FUZZ
@given(data=st.none() | peer_text | peer_bytes
       | st.dictionaries(st.sampled_from(["reason", "skills", "priority", "customer",
                                          "turns", "vip", "campaign_id", "brief"]),
                         json_values | st.lists(st.dictionaries(
                             st.sampled_from(["caller", "bot", "intent", "emotion"]),
                             json_values | st.dictionaries(
                                 st.sampled_from(["label", "confidence", "top3", "scores",
                                                  "text_scores", "arousal"]), json_values))))
       .map(json.dumps))
def test_a_transfer_always_gives_a_handover(data) -> None:
    handover = timed(parse_transfer, data)
    assert isinstance(handover, Handover)
    assert handover.reason


# ---- server -> module (the simulator's side) ----------------------------------------------


@FUZZ
@given(text=peer_text | st.fixed_dictionaries(
    {"type": st.just("playAudio"),
     "data": st.fixed_dictionaries({"sampleRate": st.sampled_from([8000, 16000, 8000.0, "x"]),
                                    "audioContent": st.binary(max_size=64).map(
                                        lambda b: base64.b64encode(b).decode())
                                    | st.text(max_size=20) | json_values})}).map(json.dumps))
def test_server_frames_and_their_audio_are_parsed_or_refused(text) -> None:
    try:
        command = timed(parse_server_text, text)
    except ProtocolError as err:
        assert_protocol_error(err)
        return
    try:
        pcm, rate = command.audio()
    except ProtocolError as err:
        assert_protocol_error(err)
        return
    except ValueError:
        assert command.type != "playAudio"
        return
    assert len(pcm) % 2 == 0 and rate in SAMPLE_RATES


# ---- regressions: what the fuzzing found ----------------------------------------------------


def test_deeply_nested_metadata_is_a_protocol_error_not_a_recursion_error() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_metadata("[" * 3000 + "]" * 3000)
    assert exc.value.close_code == media_fork.CLOSE_INVALID_PAYLOAD
    assert f"nested deeper than {MAX_JSON_DEPTH}" in exc.value.reason


def test_nesting_up_to_the_limit_is_accepted_and_brackets_in_strings_do_not_count() -> None:
    inner = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    meta = parse_metadata(json.dumps({"callId": "c", "sampleRate": 8000,
                                      "customer": {"notes": "[[[[" * 100,
                                                   "x": json.loads(inner)}}))
    assert meta.customer["notes"] == "[[[[" * 100


def test_a_5000_digit_number_in_metadata_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_metadata('{"callId":"c","sampleRate":8000,"x":' + "9" * 5000 + "}")
    assert exc.value.close_code == media_fork.CLOSE_INVALID_PAYLOAD
    assert "number longer than" in exc.value.reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_metadata_are_refused(literal: str) -> None:
    with pytest.raises(ProtocolError):
        parse_metadata('{"callId":"c","sampleRate":8000,"x":' + literal + "}")


def test_metadata_with_an_unpaired_surrogate_is_refused() -> None:
    for data in ('{"callId":"c","sampleRate":8000,"from":"\\ud800"}',  # escaped in JSON
                 '{"callId":"c","sampleRate":8000,"from":"\ud800"}'):  # in the frame text
        with pytest.raises(ProtocolError) as exc:
            parse_metadata(data)
        assert exc.value.close_code == media_fork.CLOSE_INVALID_PAYLOAD


def test_metadata_that_is_not_utf8_is_refused_as_such() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_metadata(b'{"callId":"c","sampleRate":8000,"from":"\xff"}')
    assert exc.value.reason == "metadata is not JSON (not valid UTF-8)"


@pytest.mark.parametrize("key, value", [("callId", "call-1\n"), ("callId", "call-1\x00"),
                                        ("campaign", "spring\n"), ("lead", "L1\r")])
def test_ids_with_a_trailing_newline_or_control_character_are_refused(key, value) -> None:
    doc = {"callId": "call-1", "sampleRate": 8000, key: value}
    with pytest.raises(ProtocolError) as exc:
        parse_metadata(json.dumps(doc))
    assert exc.value.close_code == media_fork.CLOSE_POLICY


def test_module_text_frame_limit_counts_bytes_not_characters() -> None:
    frame = json.dumps({"type": "dtmf", "data": {"digit": "1", "pad": "é" * 5000}},
                       ensure_ascii=False)
    assert len(frame) <= media_fork.MAX_TEXT_FRAME_BYTES < len(frame.encode())
    with pytest.raises(ProtocolError) as exc:
        parse_module_text(frame)
    assert exc.value.close_code == media_fork.CLOSE_TOO_BIG


def test_deep_or_huge_module_text_frames_are_protocol_errors() -> None:
    for frame in ('{"type":"mark","data":' + "[" * 3000 + "]" * 3000 + "}",
                  '{"type":"mark","n":' + "1" * 5000 + "}"):
        with pytest.raises(ProtocolError):
            parse_module_text(frame)


def test_server_text_has_a_size_limit() -> None:
    frame = json.dumps({"type": "json", "data": {"x": "a" * media_fork.MAX_SERVER_TEXT_BYTES}})
    with pytest.raises(ProtocolError) as exc:
        parse_server_text(frame)
    assert exc.value.close_code == media_fork.CLOSE_TOO_BIG


@pytest.mark.parametrize("data", [{"sampleRate": 8000},  # no audio
                                  {"sampleRate": 8000, "audioContent": "!!"},
                                  {"sampleRate": 8000, "audioContent": 5},
                                  {"sampleRate": 8000, "audioContent": "AA=="},  # one byte
                                  {"sampleRate": "8000", "audioContent": "AAAA"},
                                  {"audioContent": "AAAA"}])
def test_malformed_play_audio_is_a_protocol_error(data) -> None:
    command = parse_server_text(json.dumps({"type": "playAudio", "data": data}))
    with pytest.raises(ProtocolError):
        command.audio()


@pytest.mark.parametrize("data", [
    "[" * 5000 + "]" * 5000,
    '{"reason":"r","n":' + "1" * 5000 + "}",
    json.dumps({"reason": "r", "turns": [{"intent": {"confidence": "high"}}]}),
    json.dumps({"reason": "r", "turns": [{"emotion": {"scores": [1, 2]}}]}),
    json.dumps({"reason": "r", "turns": [{"intent": {"top3": 5}}]}),
    "x" * (media_fork.MAX_TRANSFER_BYTES + 1),
])
def test_a_malformed_transfer_still_gives_a_handover(data: str) -> None:
    handover = parse_transfer(data)
    assert isinstance(handover, Handover)
    if handover.reason != DEFAULT_HANDOVER_REASON:  # the bad turn alone is dropped
        assert handover.reason == "r"
        assert all(t.intent is None and t.emotion is None for t in handover.turns)


def test_metadata_limit_is_the_documented_one() -> None:
    assert MAX_METADATA_BYTES == 8192
