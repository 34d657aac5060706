"""What a hostile value cannot do on the ESL command line (docs/security.md): a newline
never becomes a second command, a prompt name never leaves the sounds folder, the fork's
metadata reaches the gateway exactly as sent, and the simulator splits api arguments as
FreeSWITCH does (so it is no more forgiving than the real switch)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from websockets.asyncio.server import serve

from cluster.dialer import CampaignConfig, DialerSettings
from cluster.dialer.campaign import ComplianceConfig
from configs.settings import FreeswitchSettings, load_settings
from deployments.api.campaigns import build_campaigns_router
from telephony import esl, media_fork
from telephony import esl_commands as cmd
from telephony.call_control import CallControlError, OriginateRequest
from telephony.esl import ESLCommandError, check_command
from telephony.esl_bridge import GreenswitchLink, LinkSettings
from telephony.esl_controller import ESLController
from telephony.media_fork import ForkMetadata
from telephony.sim.channel_model import ChannelModel
from telephony.sim.fs_args import separate_string
from telephony.sim.switch import SimulatedSwitch
from telephony.wav import write_wav

pytestmark = pytest.mark.unit

UUID = "0b7a3f52-5f0e-4a51-9d1c-2f3b0c4d5e6f"
PHONE = "+15550100777"
INJECTED = f"x.wav aleg\n\napi originate sofia/gateway/premium/{PHONE} &park()"
AWKWARD = {
    "callId": UUID, "sampleRate": 16000,
    "name": "Zoë O'Brien \"the boss\"",
    "path": "C:\\temp\\new\\table",
    "lines": "one\ntwo\r\nthree\tfour",
    "money": "$HOME ${system(id)} 100 %",
    "emoji": "☎ 📞",
    "nested": {"a b": ["it's", " lead ", "\\s\\n"]},
}


# -- the one send path ------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\t", "\x1b", "\x7f"])
def test_a_control_character_never_leaves_as_a_command(char: str) -> None:
    line = f"api uuid_kill {UUID} NORMAL_CLEARING{char}api system id {PHONE}"
    with pytest.raises(ESLCommandError) as exc:
        check_command(line)
    message = str(exc.value)
    assert message.startswith("api uuid_kill refused") and "nothing was sent" in message
    assert PHONE not in message and "system" not in message  # no personal data echoed
    with pytest.raises(ESLCommandError):
        check_command("bgapi status", {"Job-UUID": f"abc{char}api system id"})
    with pytest.raises(ValueError):
        esl.api(line)


def test_the_auth_line_never_shows_the_password() -> None:
    with pytest.raises(ESLCommandError) as exc:
        check_command("auth hunter\nexit")
    assert "hunter" not in str(exc.value)


async def test_the_link_refuses_before_sending_anything() -> None:
    link = GreenswitchLink(LinkSettings("127.0.0.1", 1, "pw", ("CHANNEL_ANSWER",)),
                           on_event=lambda headers, body: None)
    link.connected = True  # even a connected link: the check comes first
    with pytest.raises(ESLCommandError):
        await link.command(f"api uuid_broadcast {UUID} {INJECTED}")
    with pytest.raises(ESLCommandError):
        await link.command("bgapi status", headers={"Job-UUID": "x\n\napi system id"})
    assert link._commands.empty()
    with pytest.raises(ESLCommandError):  # greenswitch would send it as `auth …` itself
        GreenswitchLink(LinkSettings("127.0.0.1", 1, "pw\napi system id", ("ALL",)),
                        on_event=lambda headers, body: None)


# -- values checked where the line is built ---------------------------------------------


@pytest.mark.parametrize("request_fields", [
    {"caller_id_name": "Fleet\napi system id"},
    {"caller_id_name": "${system(id)}"},
    {"caller_id_name": "a'b"},
    {"caller_id_number": "+1555 0100"},
    {"destination": f"{PHONE}\n"},
    {"destination": f"{PHONE} &bridge(sofia/gateway/premium/1900)"},
    {"variables": {"callfleet_campaign": "x}sofia/gateway/premium/1900"}},
    {"variables": {"callfleet_note": "a\\,b"}},
    {"variables": {"bad name": "x"}},
    {"call_uuid": f"{UUID}\n"},
])
def test_originate_refuses_values_that_would_break_out(request_fields: dict) -> None:
    fields = {"call_uuid": UUID, "destination": PHONE, "gateways": ["carrier-a"],
              **request_fields}
    with pytest.raises(cmd.CommandArgumentError) as exc:
        cmd.originate(OriginateRequest(**fields), "carrier-a")
    assert PHONE not in str(exc.value)


def test_call_control_lines_check_every_argument() -> None:
    bad = [
        lambda: cmd.uuid_transfer(UUID, "1001\napi system id", "default"),
        lambda: cmd.uuid_transfer(UUID, "1001", "default XML other"),
        lambda: cmd.uuid_kill(UUID, "NORMAL_CLEARING\n"),
        lambda: cmd.uuid_bridge(UUID, "x y"),
        lambda: cmd.uuid_break(f"{UUID} all\napi system id"),
        lambda: cmd.uuid_broadcast(UUID, "relative.wav"),
        lambda: cmd.uuid_broadcast(UUID, "/var/sounds/../../etc/passwd"),
        lambda: cmd.uuid_broadcast(UUID, "/tmp/a b.wav"),
        lambda: cmd.uuid_broadcast(UUID, "/tmp/${system(id)}.wav"),
        lambda: cmd.uuid_broadcast(UUID, "/tmp/a.wav", "aleg\napi system id"),
        lambda: cmd.audio_fork_start(UUID, "ws://gw/media x", "16k"),
        lambda: cmd.audio_fork_start(UUID, "ws://gw/'media'", "16k"),
        lambda: cmd.audio_fork_start(UUID, "ws://gw/media\n", "16k"),
    ]
    for build in bad:
        with pytest.raises(cmd.CommandArgumentError):
            build()
    assert cmd.uuid_broadcast(UUID, "/srv/prompts/info.wav") == (
        f"uuid_broadcast {UUID} /srv/prompts/info.wav aleg")
    assert cmd.uuid_transfer(UUID, "1001", "agents") == f"uuid_transfer {UUID} 1001 XML agents"


@pytest.mark.parametrize("name, reason", [
    ("../../etc/cron.d/x.wav", "not a path"),
    ("/etc/passwd.wav", "not a path"),
    ("ivr/info.wav", "not a path"),
    ("..\\info.wav", "not a path"),
    ("..info.wav", "'..'"),
    ("info.wav\napi system id", "control characters"),
    ("info .wav", "letters, digits"),
    ("$info.wav", "letters, digits"),
    ("info.mp3", ".wav file"),
    ("", "needs a file name"),
])
def test_a_prompt_is_a_base_name_in_the_sounds_folder(name: str, reason: str) -> None:
    with pytest.raises(cmd.CommandArgumentError, match=reason):
        cmd.sound_path("/srv/prompts", name)
    assert cmd.sound_path("/srv/prompts/", "spring-offer_2.wav") == (
        "/srv/prompts/spring-offer_2.wav")
    with pytest.raises(cmd.CommandArgumentError, match="freeswitch.sounds_dir"):
        cmd.sound_path("/srv/my prompts", "info.wav")
    with pytest.raises(cmd.CommandArgumentError, match="freeswitch.sounds_dir"):
        cmd.sound_path("prompts", "info.wav")


# -- the campaign's information message, at the config and API layers --------------------


CAMPAIGN = {"id": "winter", "bot_script": "shop", "caller_id_number": "+12125550100",
            "gateways": ["carrier-a"]}


@pytest.mark.parametrize("message", [INJECTED, "../../../tmp/x.wav", "/tmp/x.wav",
                                     "ivr/x.wav", "x.wav\r", "x.ogg"])
def test_info_message_is_validated_in_the_campaign_config(message: str) -> None:
    with pytest.raises(ValidationError, match="info_message"):
        CampaignConfig(**CAMPAIGN, compliance={"info_message": message})
    assert ComplianceConfig().info_message == "campaign-info.wav"
    assert ComplianceConfig(info_message="").info_message == ""  # <id>-info.wav


@pytest.mark.parametrize("fields", [
    {"caller_id_name": "Fleet\napi system id"},
    {"caller_id_name": "${system(id)}"},
    {"gateways": ["carrier-a/../premium"]},
    {"gateways": ["carrier-a &bridge(x)"]},
    {"variables": {"callfleet_note": "a}b"}},
    {"variables": {"x\ny": "1"}},
])
def test_other_originate_values_are_validated_in_the_campaign_config(fields: dict) -> None:
    with pytest.raises(ValidationError, match=next(iter(fields))):
        CampaignConfig(**{**CAMPAIGN, **fields})
    assert CampaignConfig(**CAMPAIGN, caller_id_name="Fleet Shop, Sales").caller_id_name


def test_the_campaign_api_answers_422_for_an_injected_info_message() -> None:
    app = FastAPI()
    # the body is refused before the store is ever asked for
    app.include_router(build_campaigns_router(lambda: None, DialerSettings(api_token="t")))
    with TestClient(app) as client:
        for message in (INJECTED, "../../etc/x.wav"):
            resp = client.post("/campaigns", headers={"Authorization": "Bearer t"},
                               json={**CAMPAIGN, "compliance": {"info_message": message}})
            assert resp.status_code == 422
            detail = resp.json()["detail"][0]
            assert detail["loc"][-1] == "info_message"
            assert "a prompt" in detail["msg"]


# -- the ESL password ---------------------------------------------------------------------


def test_the_default_esl_password_is_refused_outside_simulation() -> None:
    assert FreeswitchSettings().simulate  # local mode keeps working with the default
    with pytest.raises(ValidationError, match="freeswitch.password"):
        FreeswitchSettings(simulate=False)
    assert not FreeswitchSettings(simulate=False, password="long-random").simulate
    with pytest.raises(Exception) as exc:
        load_settings(freeswitch={"simulate": False})
    problem = str(exc.value).splitlines()[-1]
    assert "freeswitch.password" in problem and "CALLFLEET_FREESWITCH__PASSWORD" in problem
    with pytest.raises(Exception) as exc:
        load_settings(freeswitch={"simulate": False, "password": "s3cret\nexit"})
    assert "s3cret" not in str(exc.value) and "control characters" in str(exc.value)


# -- fork metadata on the command line ----------------------------------------------------


def _fork_args(metadata) -> str:
    line = cmd.audio_fork_start(UUID, "ws://127.0.0.1:8001/media/" + UUID, "16k",
                                metadata=metadata)
    return line.split(" ", 1)[1]  # what FreeSWITCH hands mod_audio_fork


def test_fork_metadata_has_no_raw_separator_and_round_trips_through_the_splitter() -> None:
    args = _fork_args(AWKWARD)
    text = args.split(" ", 5)[5]
    assert not any(c in text for c in " '$") and "\\" not in text.replace("\\u", "")
    assert text.isascii()
    parts = separate_string(args, " ", 6)  # mod_audio_fork's char *argv[6]
    assert parts[:5] == [UUID, "start", f"ws://127.0.0.1:8001/media/{UUID}", "mono", "16k"]
    assert json.loads(parts[5]) == AWKWARD
    assert media_fork.parse_metadata(parts[5], UUID).extra["name"] == AWKWARD["name"]
    # send_text: the module sends argv[2] alone
    send = cmd.audio_fork_send_text(UUID, {"type": "note", "data": AWKWARD})
    assert json.loads(separate_string(send.split(" ", 1)[1], " ", 6)[2])["data"] == AWKWARD
    # the typed metadata goes the same way
    meta = ForkMetadata(UUID, 8000, direction="inbound", extra={"campaign": "spring 'A'"})
    assert json.loads(separate_string(_fork_args(meta), " ", 6)[5]) == json.loads(meta.to_json())


def _same_json(text: str, doc: dict) -> bool:
    try:
        return json.loads(text) == doc
    except json.JSONDecodeError:
        return False


@pytest.mark.parametrize("value", ["it's 'quoted'", 'say \\"hi\\"', "a\\nb", "tab\\there"])
def test_plain_json_would_not_survive_the_switch(value: str) -> None:
    """Why the escapes: FreeSWITCH's splitter, which the simulator now runs (it used to
    take the rest of the line verbatim), unquotes and unescapes what json.dumps writes."""
    doc = {"callId": UUID, "sampleRate": 8000, "v": value}
    parts = separate_string(f"{UUID} start ws://gw/m mono 8k {json.dumps(doc)}", " ", 6)
    assert not _same_json(parts[5], doc)
    assert _same_json(separate_string(_fork_args(doc), " ", 6)[5], doc)


def test_send_text_keeps_only_the_first_word_of_plain_json() -> None:
    doc = {"type": "dtmf", "data": {"digit": "1"}}
    parts = separate_string(f"{UUID} send_text {json.dumps(doc)}", " ", 6)
    assert parts[2] == '{"type":'  # all mod_audio_fork would send
    line = cmd.audio_fork_send_text(UUID, doc)
    assert _same_json(separate_string(line.split(" ", 1)[1], " ", 6)[2], doc)


def test_the_splitter_matches_freeswitch() -> None:
    assert separate_string("a  'b c'  d\\ e", " ", 10) == ["a", "b c", "d\\ e"]
    assert separate_string(r"x \'q\' \"r\" \\ \n\t\s", " ", 10) == [
        "x", "'q'", '"r"', "\\", "\n\t "]
    assert separate_string("a b c d", " ", 2) == ["a", "b c d"]  # the last keeps the rest
    assert separate_string("a,b,'c,d',e,", ",", 10) == ["a", "b", "c,d", "e"]
    assert separate_string("^^:a:b c:d", " ", 10) == ["a", "b c", "d"]
    assert separate_string("it's", " ", 2) == ["it's"]  # a lone quote stays
    assert separate_string("", " ", 4) == []


# -- through the controller and the simulated switch -------------------------------------


@pytest.fixture
async def switch_and_controller(tmp_path: Path):
    received: list[str] = []

    async def gateway(ws) -> None:
        received.append(await ws.recv())
        await ws.close()

    server = await serve(gateway, "127.0.0.1", 0, subprotocols=[media_fork.SUBPROTOCOL])
    port = server.sockets[0].getsockname()[1]
    model = ChannelModel(answer_rate=1.0, busy_rate=0.0, ring_s=(0.1, 0.2))
    switch = SimulatedSwitch("not-ClueCon", model, linger_s=30)
    await switch.start()
    settings = FreeswitchSettings(port=switch.port, password="not-ClueCon",
                                  media_url=f"ws://127.0.0.1:{port}/media",
                                  sounds_dir=tmp_path)
    controller = ESLController(settings)
    await controller.start(wait_s=10)
    try:
        yield switch, controller, received, tmp_path
    finally:
        await controller.stop()
        await switch.stop()
        server.close()


async def test_awkward_fork_metadata_reaches_the_gateway_intact(switch_and_controller) -> None:
    switch, ctl, received, _ = switch_and_controller
    result = await ctl.originate(OriginateRequest(
        call_uuid=UUID, destination=PHONE, gateways=["carrier-a"],
        variables={"callfleet_no_fork": "1"}))
    assert result.answered
    extra = {k: v for k, v in AWKWARD.items() if k not in ("callId", "sampleRate")}
    await ctl.start_media_fork(UUID, extra)
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.02)
    doc = json.loads(received[0])
    assert {k: doc[k] for k in extra} == extra
    assert doc["callId"] == UUID and doc["sampleRate"] == 16000


async def test_prompts_play_only_from_the_sounds_folder(switch_and_controller) -> None:
    switch, ctl, _, sounds = switch_and_controller
    write_wav(sounds / "info.wav", np.zeros(800, dtype="<i2"), 8000)
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination=PHONE,
                                         gateways=["carrier-a"],
                                         variables={"callfleet_no_fork": "1"}))
    channel = switch.channels[UUID]
    for name in ("../info.wav", str(sounds / "info.wav"), INJECTED):
        with pytest.raises(CallControlError) as exc:
            await ctl.play_and_hangup(UUID, name, 0.0)
        assert not exc.value.retryable and PHONE not in str(exc.value)
    assert channel.broadcasts == [] and UUID in switch.channels  # nothing reached the switch
    await ctl.play_and_hangup(UUID, "info.wav", 0.0)
    assert channel.broadcasts == [str(sounds / "info.wav")]
