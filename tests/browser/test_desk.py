"""The agent desk and the supervisor wallboard in a real browser (Chromium via
Playwright) against one in-process floor: a simulated caller escalates through the real
simulator, ESL controller, fork runner, script bot and skill router; an agent takes the
call on the desk and wraps up; a supervisor watches it on the wallboard and listens in.

CALLFLEET_SCREENSHOTS=<folder> saves the screens shown in docs/agents.md there."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.browser.floor import CALLER_NUMBER, SAID, SUPERVISOR_KEY, Floor

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SHOTS = os.environ.get("CALLFLEET_SCREENSHOTS")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def sign_in(page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def until(check, timeout_s: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met in {timeout_s:g} s")


def test_wrong_missing_and_agent_tokens_are_refused(floor: Floor, page) -> None:
    token = floor.add_agent("zed", "Zed Park", "7009")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    sign_in(page, f"{floor.base_url}/desk", "zed:not-the-secret")
    page.get_by_role("alert").filter(has_text="wrong or unknown token").wait_for()
    assert page.locator("#controls").is_hidden()
    page.get_by_role("button", name="Sign in").click()  # nothing typed
    page.get_by_text("Enter your token.").wait_for()
    # an agent's token on the wallboard: a clear refusal, and no floor data
    sign_in(page, f"{floor.base_url}/wallboard", token)
    refusal = page.get_by_role("alert")
    refusal.filter(has_text="Agents cannot open the wallboard").wait_for()
    assert page.locator("#board").is_hidden()
    response = httpx.get(f"{floor.base_url}/api/wallboard/state",
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert httpx.get(f"{floor.base_url}/api/wallboard/state").status_code == 401
    assert page.url.endswith("/api/wallboard")  # redirected from /wallboard by the gateway
    secret = token.split(":", 1)[1]
    assert not any(secret in url or "not-the-secret" in url for url in urls)


def test_an_agent_takes_an_escalated_call_while_a_supervisor_listens(
        floor: Floor, browser, page) -> None:
    floor.add_agent("ann", "Ann Lee", "7001")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    sign_in(page, f"{floor.base_url}/desk", floor.tokens["ann"])
    page.locator("#state[data-state=available]").wait_for()

    call_uuid = floor.call_in(hold_s=60)
    offer = page.locator("#offer")
    offer.wait_for(state="visible", timeout=25_000)
    # the brief: who, why, what the bot understood, the conversation, the articles
    assert page.locator("#brief-caller").inner_text() == "+•••••••7788"
    assert CALLER_NUMBER not in page.content()
    assert "Dana Reyes" in offer.inner_text() and "GOLD" in offer.inner_text()
    assert page.locator("#brief-reason").inner_text() == "caller pressed zero"
    assert page.locator("#brief-intent").inner_text() == "cancel order (87 %)"
    assert "anger" in page.locator("#brief-emotion").inner_text()
    conversation = page.locator("#brief-transcript").inner_text()
    assert SAID in conversation and "I can help with a cancellation" in conversation
    assert "Turns so far: 2." in offer.inner_text()  # the transcript's two turns
    page.locator("#articles mark").first.wait_for()
    assert "How do I cancel my order?" in page.locator("#articles").inner_text()
    assert int(page.locator("#countdown").inner_text()) > 0
    shot(page, "desk-offer.png")

    boss = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    sign_in(boss, f"{floor.base_url}/wallboard", SUPERVISOR_KEY)
    row = boss.locator(f"tr[data-call='{call_uuid}']")
    row.filter(has_text="queued").wait_for()

    page.get_by_role("button", name="Accept").click()
    page.locator("#call").wait_for(state="visible")
    page.locator("#call-status", has_text="live").wait_for()
    assert SAID in page.locator("#transcript").inner_text()
    caller = floor.channel(call_uuid)
    until(lambda: caller.bridged_to, what="the caller bridged to the agent's phone")
    row.filter(has_text="with agent").wait_for()
    assert "ann" in row.inner_text()

    boss.locator("#extension").fill("7900")
    row.get_by_role("button", name="Listen").click()
    boss.locator("#listening").filter(has_text="Listening to call").wait_for()
    leg = until(lambda: floor.supervisor_legs(), what="a supervisor leg")[0]
    assert leg.eavesdrop == (call_uuid, "listen") and leg.destination == "7900"
    row.get_by_role("button", name="Whisper").click()
    boss.locator("#listening").filter(has_text="Whispering on call").wait_for()
    until(lambda: leg.eavesdrop == (call_uuid, "whisper"), what="whisper mode")
    boss.locator("#latency svg").wait_for()
    shot(boss, "wallboard.png")
    shot(page, "desk-call.png")

    page.get_by_role("button", name="Hang up").click()
    page.locator("#wrapup").wait_for(state="visible")
    assert caller.hangup_cause is not None and leg.hangup_cause is not None  # eavesdrop ends too
    page.get_by_label("Disposition").select_option("follow_up")
    page.get_by_label("Notes").fill("Wants the order cancelled; refund promised.")
    page.get_by_label("Callback (optional)").fill("2030-01-02T10:30")
    page.get_by_role("button", name="Save wrap-up").click()
    page.locator("#state[data-state=wrap_up]").wait_for()
    page.locator("#state[data-state=available]").wait_for(timeout=10_000)  # after wrap_up_s

    record = floor.run(floor.store.get_escalation(call_uuid))
    assert record.wrap_up.disposition == "follow_up" and record.wrap_up.callback_at > 0
    assert record.wrap_up.notes.startswith("Wants the order cancelled")
    secret = floor.tokens["ann"].split(":", 1)[1]
    assert not any(secret in url for url in urls)
    boss.context.close()


def test_a_caller_who_hangs_up_on_hold_is_abandoned(floor: Floor, page) -> None:
    floor.add_agent("bea", "Bea Cruz", "7002")
    for other in ("ann", "zed"):  # only bea takes this call
        if other in floor.tokens:
            floor.run(floor.router.set_state(other, "logged_out"))
    sign_in(page, f"{floor.base_url}/desk", floor.tokens["bea"])
    page.locator("#state[data-state=available]").wait_for()
    before = floor.run(floor.store.daily_outcomes(time.time(), 1))[0]["abandoned"]

    call_uuid = floor.call_in(hold_s=3)
    page.locator("#offer").wait_for(state="visible", timeout=25_000)
    offer_id = floor.run(floor.store.get_escalation(call_uuid)).offer_id
    # nobody answers: the caller gives up after hold_s and the desk says so
    page.get_by_text("The caller hung up.").wait_for(timeout=10_000)
    assert page.locator("#offer").is_hidden()
    assert floor.channel(call_uuid).abandoned
    response = httpx.post(f"{floor.base_url}/api/agents/offers/{offer_id}/accept",
                          headers={"Authorization": f"Bearer {floor.tokens['bea']}"}, json={})
    assert response.status_code == 409
    assert response.json()["detail"]["reason"] == "caller_hung_up"
    after = floor.run(floor.store.daily_outcomes(time.time(), 1))[0]["abandoned"]
    assert after == before + 1
    state = httpx.get(f"{floor.base_url}/api/wallboard/state",
                      headers={"Authorization": f"Bearer {SUPERVISOR_KEY}"}).json()
    assert state["queue_figures"]["abandoned"] == after
    assert call_uuid not in json.dumps(state["calls"])
    assert re.fullmatch(r"\+•+\d{4}", floor.run(floor.store.get_escalation(call_uuid)).request.caller)
