"""The ESL wire format and the simulated mod_event_socket: exact bytes a FreeSWITCH
client sends and receives, and how a bad peer is turned away."""

from __future__ import annotations

import asyncio

import pytest

from telephony import esl
from telephony.esl import (
    MAX_CONTENT_LENGTH,
    MAX_HEADER_BYTES,
    ESLMessage,
    ESLParser,
    ESLProtocolError,
    encode_event,
    parse_event,
)
from telephony.sim.esl_server import GOODBYE, ESLServer

pytestmark = pytest.mark.unit

JOB = "7f4de4b2-1c1a-4c7e-9a51-2d2f2f1f6a10"
STREAM = (
    b"Content-Type: auth/request\n\n"
    b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    b"Content-Type: api/response\nContent-Length: 12\n\n+OK 1234\n\n\xc3\xa9"
    b"Content-Length: 23\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\n\n"
)


def _check_stream(msgs: list[ESLMessage]) -> None:
    assert [m.content_type for m in msgs] == [
        "auth/request", "command/reply", "api/response", "text/event-plain",
    ]
    assert msgs[1].headers["Reply-Text"] == "+OK accepted"
    assert msgs[2].body == "+OK 1234\n\né"
    assert parse_event(msgs[3]) == {"Event-Name": "HEARTBEAT"}


def test_frames_split_at_every_byte_offset() -> None:
    for cut in range(len(STREAM) + 1):
        parser = ESLParser()
        _check_stream(parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]))


def test_frames_fed_one_byte_at_a_time_and_all_at_once() -> None:
    parser = ESLParser()
    _check_stream([m for i in range(len(STREAM)) for m in parser.feed(STREAM[i : i + 1])])
    _check_stream(ESLParser().feed(STREAM))


def test_command_frames_and_crlf() -> None:
    msgs = ESLParser(commands=True).feed(b"\r\nbgapi status\r\nJob-UUID: abc\r\n\r\nexit\n\n")
    assert [(m.command, m.headers) for m in msgs] == [
        ("bgapi status", {"Job-UUID": "abc"}),
        ("exit", {}),
    ]


def test_event_round_trip_with_awkward_values() -> None:
    headers = {
        "Event-Name": "CHANNEL_HANGUP_COMPLETE",
        "Caller-Caller-ID-Name": "Zoë O'Brien & co",
        "variable_note": "100% done: yes\nsecond line\r\nthird",
        "variable_sip_uri": "sip:+15551234567@gw.example.com;transport=tcp",
    }
    frame = encode_event(headers, body="inner body\nwith: colon\n")
    raw = frame.serialize()
    assert raw.startswith(b"Content-Length: ")
    assert b"\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_HANGUP_COMPLETE\n" in raw
    assert b"variable_note: 100%25%20done%3A%20yes%0Asecond%20line%0D%0Athird\n" in raw
    assert b"Caller-Caller-ID-Name: Zo%C3%AB%20O'Brien%20%26%20co\n" in raw
    assert raw.endswith(b"Content-Length: 23\n\ninner body\nwith: colon\n")
    (msg,) = ESLParser().feed(raw)
    assert parse_event(msg) == {**headers, "Content-Length": "23", "_body": "inner body\nwith: colon\n"}


def test_event_without_body_ends_with_blank_line_and_empty_value_is_undef() -> None:
    msg = encode_event({"Event-Name": "CUSTOM", "Event-Subclass": "a::b", "x": ""})
    assert msg.serialize() == (
        b"Content-Length: 56\nContent-Type: text/event-plain\n\n"
        b"Event-Name: CUSTOM\nEvent-Subclass: a%3A%3Ab\nx: _undef_\n\n"
    )


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"A" * (MAX_HEADER_BYTES + 1), "header block"),
        (b"X: " + b"a" * MAX_HEADER_BYTES + b"\n\n", "header block"),
        (f"Content-Length: {MAX_CONTENT_LENGTH + 1}\n\n".encode(), "exceeds"),
        (b"Content-Length: 12abc\n\n", "not a non-negative integer"),
        (b"Content-Length: -3\n\n", "not a non-negative integer"),
        (b"no colon here\n\n", "malformed header"),
    ],
)
def test_limits_raise_protocol_error(data: bytes, reason: str) -> None:
    with pytest.raises(ESLProtocolError, match=reason):
        ESLParser().feed(data)


def test_command_helpers_exact_bytes() -> None:
    assert esl.auth("ClueCon") == b"auth ClueCon\n\n"
    assert esl.api("status") == b"api status\n\n"
    assert esl.bgapi("originate sofia/gateway/gw/1000 &park()", job_uuid=JOB) == (
        f"bgapi originate sofia/gateway/gw/1000 &park()\nJob-UUID: {JOB}\n\n".encode()
    )
    assert esl.bgapi("status") == b"bgapi status\n\n"
    assert esl.event_plain(["BACKGROUND_JOB", "CHANNEL_ANSWER"]) == (
        b"event plain BACKGROUND_JOB CHANNEL_ANSWER\n\n"
    )
    assert esl.event_plain("ALL") == b"event plain ALL\n\n"
    assert esl.exit() == b"exit\n\n"
    with pytest.raises(ValueError):
        esl.api("status\n\nexit")


# -- against a running server over real TCP -----------------------------------------


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = ESLParser()
        self.inbox: list[ESLMessage] = []

    @classmethod
    async def connect(cls, server: ESLServer, password: str | None = None) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", server.port))
        assert (await client.recv()).content_type == "auth/request"
        if password is not None:
            await client.send(esl.auth(password))
            assert (await client.recv()).headers["Reply-Text"] == "+OK accepted"
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 2.0) -> ESLMessage:
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise EOFError("server closed the connection")
            self.inbox += self.parser.feed(data)
        return self.inbox.pop(0)

    async def assert_closed_with_goodbye(self) -> None:
        notice = await self.recv()
        assert notice.content_type == "text/disconnect-notice"
        assert notice.body == GOODBYE
        with pytest.raises(EOFError):
            await self.recv()

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def server():
    srv = ESLServer("ClueCon")
    await srv.start()
    yield srv
    await srv.stop()


async def test_auth_ok_then_api_status(server: ESLServer) -> None:
    client = await Client.connect(server, "ClueCon")
    await client.send(esl.api("status"))
    reply = await client.recv()
    assert reply.content_type == "api/response"
    assert reply.body.startswith("UP ") and "is ready" in reply.body
    assert reply.serialize().startswith(b"Content-Type: api/response\nContent-Length: ")
    client.close()


async def test_wrong_password_gets_err_then_goodbye_and_close(server: ESLServer) -> None:
    client = await Client.connect(server)
    await client.send(esl.auth("nope"))
    reply = await client.recv()
    assert reply.serialize() == b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
    await client.assert_closed_with_goodbye()


async def test_commands_before_auth_are_refused_but_auth_still_works(server: ESLServer) -> None:
    client = await Client.connect(server)
    await client.send(esl.api("status"))
    assert (await client.recv()).headers["Reply-Text"] == "-ERR command not found"
    await client.send(esl.auth("ClueCon"))
    assert (await client.recv()).headers["Reply-Text"] == "+OK accepted"
    client.close()


async def test_unknown_api_command_text(server: ESLServer) -> None:
    client = await Client.connect(server, "ClueCon")
    await client.send(esl.api("frobnicate now"))
    reply = await client.recv()
    assert reply.serialize() == (
        b"Content-Type: api/response\nContent-Length: 35\n\n-ERR frobnicate Command not found!\n"
    )
    client.close()


async def test_bgapi_reply_then_background_job_only_when_subscribed() -> None:
    srv = ESLServer("ClueCon", api_handler=lambda cmd, args: f"+OK {cmd} [{args}]\n")
    await srv.start()
    try:
        client = await Client.connect(srv, "ClueCon")
        await client.send(esl.bgapi("originate sofia/gateway/gw/1000 &park()", job_uuid="first"))
        reply = await client.recv()
        assert reply.headers == {
            "Content-Type": "command/reply", "Reply-Text": "+OK Job-UUID: first", "Job-UUID": "first",
        }
        await client.send(esl.event_plain(["BACKGROUND_JOB"]))
        assert (await client.recv()).headers["Reply-Text"] == "+OK event listener enabled plain"
        await client.send(esl.bgapi("originate sofia/gateway/gw/1000 &park()", job_uuid=JOB))
        assert (await client.recv()).headers["Job-UUID"] == JOB
        event = parse_event(await client.recv())
        assert event["Event-Name"] == "BACKGROUND_JOB"
        assert event["Job-UUID"] == JOB  # the unsubscribed first job never arrived
        assert event["Job-Command"] == "originate"
        assert event["Job-Command-Arg"] == "sofia/gateway/gw/1000 &park()"
        assert event["_body"] == "+OK originate [sofia/gateway/gw/1000 &park()]\n"
        client.close()
    finally:
        await srv.stop()


async def test_fire_event_reaches_only_subscribed_connections(server: ESLServer) -> None:
    answer, custom, everything, idle = [await Client.connect(server, "ClueCon") for _ in range(4)]
    for client, names in [
        (answer, ["CHANNEL_ANSWER"]),
        (custom, ["CUSTOM", "mod_audio_fork::play_audio"]),
        (everything, ["ALL"]),
    ]:
        await client.send(esl.event_plain(names))
        assert (await client.recv()).headers["Reply-Text"] == "+OK event listener enabled plain"
    await server.fire_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "call-1"})
    await server.fire_event(
        {"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_fork::play_audio", "file": "/tmp/a b.wav"}
    )
    await server.fire_event({"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_fork::connect"})
    assert parse_event(await answer.recv())["Unique-ID"] == "call-1"
    assert parse_event(await custom.recv())["file"] == "/tmp/a b.wav"
    got = [parse_event(await everything.recv()).get("Event-Subclass") for _ in range(3)]
    assert got == [None, "mod_audio_fork::play_audio", "mod_audio_fork::connect"]
    for client in (answer, custom, idle):
        with pytest.raises(asyncio.TimeoutError):
            await client.recv(timeout=0.2)
    for client in (answer, custom, everything, idle):
        client.close()


@pytest.mark.parametrize(
    "garbage",
    [b"api status\nContent-Length: lots\n\n", b"x" * (MAX_HEADER_BYTES + 10)],
)
async def test_garbage_client_is_closed_while_others_keep_working(
    server: ESLServer, garbage: bytes
) -> None:
    good = await Client.connect(server, "ClueCon")
    bad = await Client.connect(server, "ClueCon")
    await bad.send(garbage)
    await bad.assert_closed_with_goodbye()
    await good.send(esl.api("uptime"))
    reply = await good.recv()
    assert reply.content_type == "api/response" and reply.body.strip().isdigit()
    good.close()


async def test_exit_says_bye_then_closes(server: ESLServer) -> None:
    client = await Client.connect(server, "ClueCon")
    await client.send(esl.exit())
    reply = await client.recv()
    assert reply.serialize() == b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
    await client.assert_closed_with_goodbye()
