"""The gateway's own media port (deployments/gateway/media_server.py) over real sockets: routing,
the fork subprotocol, frames both ways, a clear error for a busy port, and draining on
shutdown without cutting the calls in progress."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from deployments.gateway.media_server import MediaServer
from telephony.media_fork import SUBPROTOCOL

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


class EchoFork:
    """A run_fork that answers each frame with what it got and records the calls."""

    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    async def __call__(self, sock, call_uuid: str) -> str:
        self.calls.append((call_uuid, sock.offered))
        await sock.accept(SUBPROTOCOL)
        while (data := await sock.receive()) is not None:
            if data == "bye":
                await sock.close(1000, "done")
                break
            if isinstance(data, bytes):
                await sock.send_bytes(data[::-1])
            else:
                await sock.send_text(data.upper())
        return "ended"


async def started(run_fork, port: int = 0) -> MediaServer:
    server = MediaServer("127.0.0.1", port, run_fork)
    await server.start()
    return server


def test_forks_reach_the_runner_with_subprotocol_and_frames_both_ways():
    async def scenario():
        fork = EchoFork()
        server = await started(fork)
        url = f"ws://127.0.0.1:{server.bound_port}/media/call-1"
        async with connect(url, subprotocols=[SUBPROTOCOL]) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            await ws.send(b"\x01\x02\x03\x04")
            assert await ws.recv() == b"\x04\x03\x02\x01"
            await ws.send('{"callId": "call-1"}')
            assert await ws.recv() == '{"CALLID": "CALL-1"}'
            await ws.send("bye")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1000
        await server.drain(5)
        return fork.calls

    assert asyncio.run(scenario()) == [("call-1", [SUBPROTOCOL])]


def test_other_paths_get_404_and_a_missing_subprotocol_is_left_to_the_runner():
    async def scenario():
        fork = EchoFork()
        server = await started(fork)
        base = f"ws://127.0.0.1:{server.bound_port}"
        with pytest.raises(InvalidStatus) as err:
            async with connect(f"{base}/api/calls", subprotocols=[SUBPROTOCOL]):
                pass
        assert err.value.response.status_code == 404
        async with connect(f"{base}/media/call-2") as ws:  # no subprotocol offered
            assert ws.subprotocol is None
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        await server.drain(5)
        return fork.calls

    assert asyncio.run(scenario()) == [("call-2", [])]


def test_a_fork_whose_runner_crashes_does_not_take_the_port_down(
        caplog: pytest.LogCaptureFixture):
    async def scenario():
        echo = EchoFork()

        async def run_fork(sock, call_uuid: str) -> str:
            if call_uuid == "call-boom":
                await sock.accept(SUBPROTOCOL)
                raise RuntimeError("a bug in one call: caller said 'my card is 4111'")
            return await echo(sock, call_uuid)

        server = await started(run_fork)
        base = f"ws://127.0.0.1:{server.bound_port}/media"
        async with connect(f"{base}/call-boom", subprotocols=[SUBPROTOCOL]) as boom, \
                connect(f"{base}/call-ok", subprotocols=[SUBPROTOCOL]) as ok:
            with pytest.raises(ConnectionClosed) as closed:  # that call ends, with it
                await boom.recv()
            # as a server error, not a normal hang-up, and without the error's text
            assert closed.value.rcvd.code == 1011
            assert closed.value.rcvd.reason == "media fork failed on the gateway"
            await ok.send("still here")
            assert await ok.recv() == "STILL HERE"
        async with connect(f"{base}/call-next", subprotocols=[SUBPROTOCOL]) as later:
            await later.send("hello")
            assert await later.recv() == "HELLO"
            await later.send("bye")
        await server.drain(5)
        return echo.calls

    with caplog.at_level(logging.ERROR, logger="callfleet.media"):
        assert [call for call, _ in asyncio.run(scenario())] == ["call-ok", "call-next"]
    (record,) = [r for r in caplog.records if r.name == "callfleet.media"]
    assert record.getMessage() == "media fork call-boom failed (RuntimeError); closing it with 1011"
    assert record.exc_info is not None  # the traceback, for whoever fixes the bug


def test_a_busy_port_is_a_clear_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match=rf"media port 127.0.0.1:{port}.*gateway.media_port"):
            asyncio.run(started(EchoFork(), port))
    finally:
        holder.close()


def test_drain_refuses_new_forks_but_lets_a_live_call_finish():
    async def scenario():
        server = await started(EchoFork())
        base = f"ws://127.0.0.1:{server.bound_port}/media"
        async with connect(f"{base}/call-3", subprotocols=[SUBPROTOCOL]) as ws:
            drain = asyncio.create_task(server.drain(10))
            await asyncio.sleep(0.2)
            assert not drain.done()  # waiting for the call
            with pytest.raises(OSError):  # no longer listening
                async with connect(f"{base}/call-4", open_timeout=2):
                    pass
            await ws.send("still here")
            assert await ws.recv() == "STILL HERE"  # the live call is not cut
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        await asyncio.wait_for(drain, 5)

    asyncio.run(scenario())
