"""The media-fork wire protocol: what FreeSWITCH's mod_audio_fork sends us, what we send
back byte for byte, and how a bad peer is turned away."""

from __future__ import annotations

import base64
import json

import pytest

from telephony import media_fork
from telephony.media_fork import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    ForkMetadata,
    MarkEvent,
    ProtocolError,
    check_audio_frame,
    parse_metadata,
    parse_module_text,
    parse_server_text,
)

pytestmark = pytest.mark.unit

CALLER = "+15551234567"
CALL_UUID = "0b9c5f2e-3a41-4d7e-9d0f-4b1f6a2c7e10"


def metadata(**fields) -> str:
    doc = {"callId": CALL_UUID, "sampleRate": 8000}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


def rejected(text: str | bytes, url_call_uuid: str | None = None, **kw) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        parse_metadata(text, url_call_uuid, **kw)
    return exc.value


# ---- metadata accepted ------------------------------------------------------------------


def test_jambonz_metadata_is_parsed() -> None:
    meta = parse_metadata(
        metadata(
            sampleRate=16000,
            **{"from": CALLER, "to": "+15557654321"},
            direction="outbound",
            campaign="renewals",
            playback="playAudio",
            customer={"name": "Ada", "tier": "gold"},
            callerName="Ada Lovelace",
            accountSid="AC123",
        ),
        url_call_uuid=CALL_UUID,
    )
    assert meta.call_uuid == CALL_UUID
    assert meta.sample_rate == 16000
    assert meta.caller == CALLER
    assert meta.callee == "+15557654321"
    assert meta.direction == "outbound"
    assert meta.campaign == "renewals"
    assert meta.playback == "playAudio"
    assert meta.mix_type == "mono"
    assert meta.customer == {"name": "Ada", "tier": "gold"}
    assert meta.extra == {"callerName": "Ada Lovelace", "accountSid": "AC123"}


def test_call_sid_is_accepted_as_the_call_uuid() -> None:
    text = json.dumps({"callSid": "CA42", "sampleRate": 8000})
    meta = parse_metadata(text)
    assert meta.call_uuid == "CA42"
    assert meta.sample_rate == 8000
    assert meta.caller is None and meta.direction is None and meta.playback is None
    assert meta.customer == {} and meta.extra == {}


def test_url_call_uuid_is_used_when_the_metadata_has_none() -> None:
    assert parse_metadata(json.dumps({"sampleRate": 8000}), url_call_uuid="abc-1").call_uuid == "abc-1"


def test_bytes_metadata_is_accepted() -> None:
    assert parse_metadata(metadata().encode()).call_uuid == CALL_UUID


def test_metadata_round_trips_through_to_json() -> None:
    original = parse_metadata(
        metadata(
            **{"from": CALLER, "to": "+15557654321"},
            direction="inbound",
            campaign="support",
            playback="binary",
            customer={"name": "Ada"},
            accountSid="AC123",
        )
    )
    assert parse_metadata(original.to_json()) == original


def test_minimal_metadata_round_trips() -> None:
    meta = ForkMetadata(call_uuid="c1", sample_rate=8000)
    assert json.loads(meta.to_json()) == {"callId": "c1", "sampleRate": 8000, "mixType": "mono"}
    assert parse_metadata(meta.to_json()) == meta


# ---- metadata rejected ------------------------------------------------------------------


def test_non_json_metadata_is_invalid_payload() -> None:
    err = rejected("callId=abc&sampleRate=8000")
    assert err.close_code == CLOSE_INVALID_PAYLOAD
    assert "not JSON" in err.reason


def test_undecodable_metadata_bytes_are_invalid_payload() -> None:
    err = rejected(b"\xff\xfe{")
    assert err.close_code == CLOSE_INVALID_PAYLOAD
    assert "not JSON" in err.reason


def test_json_array_metadata_is_invalid_payload() -> None:
    err = rejected(json.dumps([{"callId": CALL_UUID, "sampleRate": 8000}]))
    assert err.close_code == CLOSE_INVALID_PAYLOAD
    assert "JSON object" in err.reason


def test_oversized_metadata_is_too_big() -> None:
    text = metadata(padding="x" * 9000)
    assert len(text.encode()) > media_fork.MAX_METADATA_BYTES
    err = rejected(text)
    assert err.close_code == CLOSE_TOO_BIG
    assert "8192" in err.reason


def test_metadata_limit_is_configurable() -> None:
    assert rejected(metadata(), max_bytes=16).close_code == CLOSE_TOO_BIG


@pytest.mark.parametrize(
    "rate",
    [..., None, "8000", 44100, 22050, True, 8000.5, 8000.0],
    ids=["missing", "null", "string", "44100", "22050", "bool", "fraction", "float"],
)
def test_bad_sample_rate_is_refused(rate) -> None:
    err = rejected(metadata(sampleRate=rate))
    assert err.close_code == CLOSE_POLICY
    assert "sampleRate must be one of [8000, 16000]" in err.reason


def test_bad_direction_is_refused() -> None:
    err = rejected(metadata(direction="sideways"))
    assert err.close_code == CLOSE_POLICY
    assert "direction must be inbound or outbound" in err.reason


def test_bad_playback_mode_is_refused() -> None:
    err = rejected(metadata(playback="stream"))
    assert err.close_code == CLOSE_POLICY
    assert "playback" in err.reason


def test_call_uuid_that_differs_from_the_url_is_refused() -> None:
    err = rejected(metadata(), url_call_uuid="another-call")
    assert err.close_code == CLOSE_POLICY
    assert "callId differs from the URL's call uuid" in err.reason


@pytest.mark.parametrize("call_uuid", [..., "", "has space", 42, "x" * 129])
def test_missing_or_malformed_call_uuid_is_refused(call_uuid) -> None:
    err = rejected(metadata(callId=call_uuid))
    assert err.close_code == CLOSE_POLICY
    assert "callId" in err.reason


def test_stereo_mix_is_refused() -> None:
    err = rejected(metadata(mixType="stereo"))
    assert err.close_code == CLOSE_POLICY
    assert "mixType mono" in err.reason


def test_customer_must_be_an_object() -> None:
    assert "customer must be an object" in rejected(metadata(customer="Ada")).reason


def test_every_metadata_problem_is_named() -> None:
    err = rejected(metadata(sampleRate=44100, direction="up"))
    assert "sampleRate" in err.reason and "direction" in err.reason


@pytest.mark.parametrize(
    "bad",
    [
        {"sampleRate": 44100},
        {"direction": "sideways"},
        {"mixType": "stereo"},
        {"to": 15557654321},
        {"callId": "not an id!"},
    ],
    ids=["rate", "direction", "mix", "to", "callId"],
)
def test_reason_never_carries_the_callers_number(bad: dict) -> None:
    err = rejected(metadata(**{"from": CALLER, "to": "+15557654321", **bad}))
    assert CALLER not in err.reason
    assert "5551234567" not in err.reason
    assert "5557654321" not in err.reason
    assert CALLER not in str(err)


def test_close_reason_fits_a_websocket_close_frame() -> None:
    err = rejected(metadata(sampleRate=1, direction="x", playback="y", mixType="z", customer=1))
    assert len(err.reason.encode()) <= 123


# ---- audio frames -----------------------------------------------------------------------


def test_even_frame_under_the_limit_is_accepted() -> None:
    check_audio_frame(b"\0" * 320, 8000, 16384)


def test_odd_length_frame_is_invalid_payload() -> None:
    with pytest.raises(ProtocolError) as exc:
        check_audio_frame(b"\0" * 321, 8000, 16384)
    assert exc.value.close_code == CLOSE_INVALID_PAYLOAD
    assert "odd-length" in exc.value.reason


def test_oversized_frame_is_too_big() -> None:
    with pytest.raises(ProtocolError) as exc:
        check_audio_frame(b"\0" * 16386, 8000, 16384)
    assert exc.value.close_code == CLOSE_TOO_BIG
    assert "16386" in exc.value.reason and "16384" in exc.value.reason


# ---- server -> module: exact wire text ----------------------------------------------------


def test_kill_audio_wire_text() -> None:
    assert media_fork.kill_audio() == '{"type":"killAudio"}'


def test_mark_wire_text() -> None:
    assert media_fork.mark("x") == '{"type":"mark","data":{"name":"x"}}'


def test_clear_marks_wire_text() -> None:
    assert media_fork.clear_marks() == '{"type":"clearMarks"}'


def test_disconnect_wire_text() -> None:
    assert media_fork.disconnect() == '{"type":"disconnect","data":{"reason":"bot closed the call"}}'


def test_play_audio_structure() -> None:
    pcm = bytes(range(256)) * 4
    doc = json.loads(media_fork.play_audio(pcm, 8000, "hi"))
    assert doc["type"] == "playAudio"
    data = doc["data"]
    assert data["audioContentType"] == "raw"
    assert data["sampleRate"] == 8000
    assert base64.b64decode(data["audioContent"]) == pcm
    assert data["textContent"] == "hi"
    assert set(data) == {"audioContentType", "sampleRate", "audioContent", "textContent"}


def test_play_audio_without_text_has_no_text_content() -> None:
    doc = json.loads(media_fork.play_audio(b"\0\0", 16000))
    assert "textContent" not in doc["data"]
    assert doc["data"]["sampleRate"] == 16000


def test_play_audio_round_trips_through_the_simulator_parser() -> None:
    pcm = b"\x01\x02" * 160
    cmd = parse_server_text(media_fork.play_audio(pcm, 16000, "hello"))
    assert cmd.type == "playAudio"
    assert cmd.audio() == (pcm, 16000)
    assert cmd.data["textContent"] == "hello"


def test_audio_of_a_non_play_command_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_server_text(media_fork.kill_audio()).audio()


def test_server_text_without_type_or_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_server_text("not json")
    with pytest.raises(ProtocolError):
        parse_server_text('{"data":{}}')


# ---- module -> server ---------------------------------------------------------------------


def test_mark_playout_report_is_parsed() -> None:
    event = parse_module_text('{"type":"mark","data":{"name":"seg-1","event":"playout"}}')
    assert event == MarkEvent("seg-1", "playout")


def test_mark_cleared_report_is_parsed() -> None:
    event = parse_module_text('{"type":"mark","data":{"name":"seg-2","event":"cleared"}}')
    assert event == MarkEvent("seg-2", "cleared")


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"transcription","data":{"text":"hello"}}',
        '{"type":"mark","data":{"name":"seg-1","event":"queued"}}',
        '{"type":"mark","data":"seg-1"}',
        '{"type":"mark"}',
    ],
)
def test_other_module_messages_are_ignored(text: str) -> None:
    assert parse_module_text(text) is None


def test_non_json_module_text_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_module_text("mark seg-1 playout")
    assert exc.value.close_code == CLOSE_INVALID_PAYLOAD


def test_non_object_module_text_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_module_text("[1, 2]")
    assert exc.value.close_code == CLOSE_INVALID_PAYLOAD
