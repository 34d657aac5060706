"""Loading and checking scripts: every mistake is reported with the file, the line (and
column inside a condition or template), what is wrong and what was expected; the shipped
scripts are valid; a broken new version never replaces a working one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bots.script import ScriptError, ScriptLibrary, UnknownScript, check_script, load_script

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "bots" / "scripts").glob("*.yaml"))

INTENTS = """
intents:
  order_status: {examples: [a, b, c, d, e]}
  affirm: {examples: [a, b, c, d, e]}
  oos: {examples: [a, b, c, d, e]}
"""

GOOD = """\
bot: demo
intents: intents.yaml
start: greet
variables: {order: {}}
states:
  greet:
    ask: {prompt: "Hi {customer.name|there}"}
    on:
      - intent: order_status
        goto: done
  done:
    say: "Bye {order.id|}"
    enter: [{hangup: true}]
"""


def write(tmp_path: Path, text: str, name: str = "bot.yaml") -> Path:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    script, problems = check_script(path)
    assert script is None, "expected the script to be rejected"
    return [str(p) for p in problems]


def one_problem(tmp_path: Path, good: str, bad: str) -> str:
    assert good in GOOD, good
    path = write(tmp_path, GOOD.replace(good, bad))
    found = problems_of(path)
    assert len(found) == 1, found
    return found[0].replace(str(path), "bot.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scripts_are_valid_without_warnings(path: Path) -> None:
    script, problems = check_script(path, functions={"find_order"})
    assert script is not None, "\n".join(map(str, problems))
    assert problems == []


def test_good_script_loads_with_a_summary(tmp_path: Path) -> None:
    script = load_script(write(tmp_path, GOOD))
    assert script.summary()["states"] == 2 and script.intents == {"order_status", "affirm", "oos"}


def test_unknown_state_points_at_the_goto_and_suggests_the_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("goto: done", "goto: dnoe"))
    unknown, unreachable = problems_of(path)
    assert unknown.startswith(f"{path}:10:15: error: unknown state 'dnoe'; did you mean 'done'?")
    assert "(expected a state defined under 'states:' (one of: done, greet))" in unknown
    assert unreachable.startswith(f"{path}:11:3: error: state 'done' can never be reached")


def test_unreachable_state_is_reported_at_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  orphan:\n    say: hi\n    next: done\n")
    assert problems_of(path) == [f"{path}:14:3: error: state 'orphan' can never be reached "
                                 "(expected a goto/next/on_failure leading to it from 'greet' "
                                 "or a global transition)"]


def test_unknown_intent_is_checked_against_the_scripts_intent_file(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "intent: order_status", "intent: order_stat")
    assert problem.startswith("bot.yaml:9:17: error: unknown intent 'order_stat'; did you "
                              "mean 'order_status'?")
    assert "an intent of intents.yaml (one of: affirm, oos, order_status)" in problem


def test_bad_condition_points_at_the_column_in_the_line(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "      - intent: order_status\n",
                          "      - intent: order_status\n        when: \"confidence >> 0.5\"\n")
    # the condition starts at column 16 (after `when: "`); '>>' is 11 characters in
    assert problem.startswith("bot.yaml:10:27: error: bad condition: unknown operator '>>'")


def test_missing_variable_in_a_template_points_at_it(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, '"Bye {order.id|}"', '"Bye {ordr.id}"')
    assert problem.startswith("bot.yaml:12:16: error: unknown variable 'ordr.id'; did you "
                              "mean 'order'?")


def test_unknown_entity_and_builtin_field(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "      - intent: order_status\n",
                          "      - intent: order_status\n        when: \"entities.order_nr\"\n")
    assert "unknown field 'order_nr' of 'entities'; did you mean 'order_id'?" in problem


def test_typo_in_a_key_lists_the_keys_that_are_allowed(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "goto: done", "got: done")
    assert problem == ("bot.yaml:10:9: error: unknown key 'got' (expected one of: intent, "
                       "entity, dtmf, silence, emotion, min_confidence, when, do, goto)")


def test_shape_and_meaning_problems_are_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("goto: done", "got: done").replace("{order.id|}", "{ordr.id}")
    found = problems_of(write(tmp_path, text))
    assert [p.split(": error: ")[1][:20] for p in found] == ["unknown key 'got' (e",
                                                             "unknown variable 'or"]


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    on:\n", "    on: [\n"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:") and "YAML syntax error" in problem


def test_duplicate_keys_are_errors_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  done:\n", "  greet:\n    say: x\n    next: done\n  done:\n"))
    (problem,) = problems_of(path)
    assert ":11:3: error: duplicate key 'greet' (first written on line 6)" in problem


def test_missing_intent_file_and_missing_keys(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "intents: intents.yaml", "intents: nope.yaml")
    assert problem.startswith("bot.yaml:2:10: error: intent data file not found")
    problem = one_problem(tmp_path, "start: greet\n", "")
    assert "missing required key 'start'" in problem


def test_state_that_goes_nowhere_and_actions_after_hangup(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "    enter: [{hangup: true}]\n", "")
    assert "state 'done' neither waits for the caller, moves on, nor ends the call" in problem
    script = load_script(write(tmp_path, GOOD.replace("[{hangup: true}]",
                                                      "[{hangup: true}, {say: late}]")))
    assert [w.message for w in script.warnings] == ["this action comes after a hangup and never runs"]


def test_unknown_lookup_function_is_an_error_only_when_functions_are_known(tmp_path: Path) -> None:
    text = GOOD.replace("    enter: [{hangup: true}]\n", """\
    enter:
      - lookup: {function: find_ordr, into: order, on_failure: done}
      - hangup: true
""")
    path = write(tmp_path, text)
    assert check_script(path)[0] is not None
    script, problems = check_script(path, functions={"find_order"})
    assert script is None
    assert "unknown lookup function 'find_ordr'; did you mean 'find_order'?" in str(problems[0])


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    script, problems = check_script(tmp_path / "absent.yaml")
    assert script is None and "file not found" in str(problems[0])


# ---- validate-then-swap -------------------------------------------------------------------


def test_a_broken_new_version_is_rejected_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    library = ScriptLibrary()
    first = library.load(path)
    assert first.swapped and library.get("demo").sha == first.version

    path.write_text(GOOD.replace("goto: done", "goto: nowhere"))
    report = library.load(path)
    assert not report.swapped and report.previous == first.version
    assert "unknown state 'nowhere'" in str(report.problems[0])
    assert library.get("demo").sha == first.version  # still serving
    assert library.last_errors[str(path)] == report.problems

    path.write_text(GOOD.replace("Hi ", "Hello "))
    fixed = library.load(path)
    assert fixed.swapped and library.get("demo").sha != first.version
    # a call that started on the first version still gets exactly that version
    assert library.get("demo", version=first.version).sha == first.version


def test_refresh_reloads_only_changed_files_and_unknown_names_are_clear(tmp_path: Path) -> None:
    import os

    path = write(tmp_path, GOOD)
    library = ScriptLibrary()
    library.load(path)
    assert library.refresh() == []
    path.write_text(GOOD.replace("Hi ", "Hey "))
    os.utime(path, (1, 1))
    (report,) = library.refresh()
    assert report.swapped and library.names() == ["demo"]
    with pytest.raises(UnknownScript, match="no bot script named 'nope'"):
        library.get("nope")


def test_script_error_message_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("goto: done", "goto: x").replace("{order.id|}", "{y}"))
    with pytest.raises(ScriptError) as info:
        load_script(path)
    # unknown state 'x', so 'done' is unreachable, and the unknown variable 'y'
    assert str(info.value).startswith("3 problem(s) in bot script:")
    assert [p.line for p in info.value.errors] == [10, 11, 12]
