"""Fuzzing the bot script loader with broken YAML, hostile YAML and mangled versions of
the shipped scripts.

The contract (bots/script/loader.py, docs/bots.md): `load_script_text` returns a `Script`
or raises `ScriptError` listing problems with their file and line, never another
exception, in bounded time and memory; `check_script` never raises for a bad script.
Each bug the fuzzing found has a plain regression test at the end.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.script import ScriptError, check_script, load_script
from bots.script.loader import MAX_SCRIPT_BYTES, Script, load_script_text
from bots.script.yaml_lines import MAX_DEPTH, MAX_NODES

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=100, deadline=2000, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# each example loads a whole script (~60 ms on an idle core)
SLOW_FUZZ = settings(FUZZ, max_examples=25, deadline=4000)

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "bots" / "scripts"
SHIPPED = {path.name: path.read_text() for path in sorted(SCRIPTS.glob("*.yaml"))}

FRAGMENTS = st.sampled_from([
    ":", ": ", "- ", "-", "\n", "\n  ", "\n    ", "[", "]", "{", "}", ",", "'", '"', "#",
    "? ", "<<: ", "&a ", "*a", "&b [*a, *a]", "!!binary ", "!!python/object:os.system ",
    "!!int ", "!!float ", "!!timestamp ", "%YAML 1.1\n", "---\n", "...\n", "|\n", ">\n",
    "1" * 5000, "1e999", "-.inf", ".nan", "2020-13-45", "0x" + "f" * 3000, "1:2:3:4:5",
    "on", "yes", "null", "~", "\t", "\x00", "\ufeff", "é", "{x}", "{{", "}}", "{customer.",
    "not (", "__class__", "a.__init__", "9**9**9", "(" * 40, "when: ", "goto: ", "say: ",
    "states:", "intent: ", "bot: x\n", "start: greet\n",
])
yaml_soup = st.lists(FRAGMENTS | st.text(max_size=6), max_size=40).map("".join)


def assert_contract(text: str, file: str = "fuzz.yaml", base_dir: Path = SCRIPTS) -> None:
    """Returns a Script or raises ScriptError with problems; the time bound is the
    hypothesis deadline."""
    try:
        script = load_script_text(text, file, base_dir)
    except ScriptError as exc:
        assert exc.problems, "a ScriptError lists its problems"
        for problem in exc.problems:
            assert problem.file == file
            assert problem.line >= 0 and problem.column >= 0
            assert isinstance(problem.message, str) and problem.message
            str(problem)
        assert any(p.severity == "error" for p in exc.problems)
    else:
        assert isinstance(script, Script)
        assert all(p.severity == "warning" for p in script.warnings)


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_is_a_script_or_a_script_error(text: str) -> None:
    assert_contract(text)


@FUZZ
@given(text=yaml_soup)
def test_hostile_yaml_is_a_script_or_a_script_error(text: str) -> None:
    assert_contract(text)


@st.composite
def mangled_scripts(draw) -> str:
    """A shipped script with a few lines deleted, repeated or spliced with fragments."""
    lines = SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "repeat", "splice", "replace-word"]))
        if edit == "delete":
            del lines[at]
        elif edit == "repeat":
            lines.insert(at, lines[at])
        elif edit == "splice":
            column = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:column] + draw(FRAGMENTS | st.text(max_size=8)) + \
                lines[at][column:]
        else:
            words = lines[at].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(FRAGMENTS | st.text(max_size=8))
            lines[at] = " ".join(words)
    return "".join(lines)


@SLOW_FUZZ
@given(text=mangled_scripts())
def test_mangled_shipped_scripts_are_scripts_or_script_errors(text: str) -> None:
    assert_contract(text, "mangled.yaml")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=8)
names = st.sampled_from(["greet", "done", "order_status", "affirm", "oos", "anger", "sms",
                         "order_id", "a-b", "1bad", "_x", "", "x\n", "customer", "turns"])
texts = st.sampled_from(["Hi {customer.name|there}", "{", "}", "{a.", "{{x}}", "{_x}",
                         "{order.id}", "{ order.id | none }", "{x|}" * 50]) | st.text(max_size=8)
conditions = st.sampled_from([
    "turns > 2", "not (", "9**9**9", "a.__class__", "x.__init__.__globals__", "x in [1, 2]",
    "1 < 2 < 3", "'a' in 'abc'", "(" * 40 + "1" + ")" * 40, "not " * 40 + "x",
    "-" * 40 + "1", "x" + " or x" * 300, "1" * 999, "1e999 > 1", "'" + "\\n" * 400 + "'",
    "customer.name == 'Ada'", "text.upper", "()", "[]", "(1,)"]) | st.text(max_size=10)
actions = st.one_of(
    st.fixed_dictionaries({"say": texts}),
    st.fixed_dictionaries({"set": st.dictionaries(names, texts | json_values, max_size=2)}),
    st.fixed_dictionaries({"transfer": st.fixed_dictionaries(
        {"reason": texts}, optional={"skill": names, "priority": st.integers(-2, 12)})}),
    st.fixed_dictionaries({"hangup": st.booleans() | texts}),
    st.fixed_dictionaries({"lookup": st.fixed_dictionaries(
        {"into": names, "on_failure": names},
        optional={"function": names, "args": st.dictionaries(names, texts, max_size=2),
                  "http": st.fixed_dictionaries({"service": names, "path": texts})})}),
    st.fixed_dictionaries({"faq": st.just({}) | st.fixed_dictionaries({"on_miss": names})}),
    st.fixed_dictionaries({"outcome": names | st.fixed_dictionaries(
        {"name": names, "converted": st.booleans()})}),
    st.fixed_dictionaries({"webhook": st.fixed_dictionaries(
        {"webhook": names, "event": texts}, optional={"payload": st.dictionaries(
            names, texts, max_size=2)})}),
    st.fixed_dictionaries({"callback": st.fixed_dictionaries({"when": texts})}),
    st.fixed_dictionaries({"play": st.fixed_dictionaries({"file": texts, "text": texts})}),
    json_values.map(lambda value: {"bogus": value}),
)
transitions = st.fixed_dictionaries({}, optional={
    "intent": names | st.lists(names, max_size=2), "entity": names,
    "dtmf": st.sampled_from(["1", "0", "#", "1\n", "x", "1" * 20]), "silence": st.booleans(),
    "emotion": names, "min_confidence": st.floats(-1, 2), "when": conditions,
    "do": st.lists(actions, max_size=3), "goto": names})
states = st.fixed_dictionaries({}, optional={
    "say": texts, "enter": st.lists(actions, max_size=3), "description": texts,
    "ask": st.fixed_dictionaries({}, optional={
        "prompt": texts, "reprompt": st.lists(texts, max_size=2), "on_no_match": names,
        "max_no_match": st.integers(-1, 11), "no_input": st.lists(texts, max_size=1)}),
    "on": st.lists(transitions, max_size=3),
    "next": names | st.lists(st.fixed_dictionaries({"goto": names}, optional={
        "when": conditions}), max_size=3)})
script_docs = st.fixed_dictionaries(
    {"bot": names, "intents": st.just("../data/shop_intents.yaml") | texts, "start": names,
     "states": st.dictionaries(names, states, max_size=4)},
    optional={"variables": st.dictionaries(names, json_values, max_size=3),
              "global": st.lists(transitions, max_size=2),
              "services": st.dictionaries(names, texts, max_size=2),
              "webhooks": st.lists(names, max_size=2),
              "variants": st.dictionaries(names, st.fixed_dictionaries({}, optional={
                  "weight": st.floats(-1, 2000), "set": st.dictionaries(names, json_values,
                                                                         max_size=2)}),
                  max_size=2),
              "defaults": st.fixed_dictionaries({}, optional={
                  "max_no_match": st.integers(-1, 11), "on_no_match": names,
                  "min_confidence": st.floats(-1, 2), "reprompt": st.lists(texts, max_size=2)}),
              "escalation": st.fixed_dictionaries({}, optional={
                  "say": texts, "skills": st.lists(names, max_size=2),
                  "priority": st.integers(-1, 11)})})


@FUZZ
@given(doc=script_docs)
def test_script_shaped_documents_are_scripts_or_script_errors(doc) -> None:
    assert_contract(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@SLOW_FUZZ
@given(condition=conditions, template=texts)
def test_any_condition_or_template_in_a_valid_script_is_loaded_or_a_problem(condition,
                                                                            template) -> None:
    text = SHIPPED["inbound_shop.yaml"]
    for old, new in (('"order_id != null"', condition),
                     ('"Sure, what else can I do for you?"', template)):
        assert old in text
        text = text.replace(old, json.dumps(new))  # a JSON string is a YAML "..." scalar
    assert_contract(text)


@SLOW_FUZZ
@given(text=yaml_soup | mangled_scripts())
def test_check_script_never_raises_for_a_bad_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bot.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        script, problems = check_script(path)
    assert script is not None or any(p.severity == "error" for p in problems)


# ---- regressions: what the fuzzing found ----------------------------------------------------


def problem_of(text: str) -> str:
    with pytest.raises(ScriptError) as exc:
        load_script_text(text, "bot.yaml", SCRIPTS)
    return str(exc.value)


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    """238 bytes expanded to 10^6 values (350 MB) before any check ran."""
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True))
    started = time.perf_counter()
    shown = problem_of(laughs)
    assert time.perf_counter() - started < 0.5
    assert "bot.yaml:1:4" in shown and "anchors (&name) and aliases (*name)" in shown


def test_a_recursive_anchor_is_a_problem_with_its_line_not_a_recursion_error() -> None:
    shown = problem_of("bot: x\nstates: &s\n  a: *s\n")
    assert "bot.yaml:2:9" in shown and "not supported" in shown


def test_an_alias_alone_is_refused_where_it_is_written() -> None:
    assert "bot.yaml:3:6" in problem_of("bot: x\nstart: a\nend: *nowhere\n")


@pytest.mark.parametrize("nested", ["a: " + "[" * 3000 + "]" * 3000,
                                    "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300))
                                    + "  " * 300 + "v"])
def test_deep_nesting_is_a_problem_not_a_recursion_error(nested: str) -> None:
    assert f"nested more than {MAX_DEPTH} deep" in problem_of(nested)


def test_too_many_values_is_a_problem() -> None:
    assert f"more than {MAX_NODES} values" in problem_of("a: [" + "1," * MAX_NODES + "1]")


@pytest.mark.parametrize("scalar, message", [
    ("1" * 5000, "a number of more than 100 characters"),  # was int()'s ValueError
    ("2020-13-45", "cannot read value: month must be in 1..12"),  # was datetime's ValueError
])
def test_scalars_python_cannot_read_are_problems_with_their_line(scalar, message) -> None:
    shown = problem_of(f"bot: x\nversion: {scalar}\n")
    assert f"bot.yaml:2:10: error: {message}" in shown


def test_a_script_over_the_size_limit_is_refused_as_text_and_as_a_file(tmp_path) -> None:
    big = "bot: x\n" + "# padding\n" * (MAX_SCRIPT_BYTES // 10)
    assert "file is too large" in problem_of(big)
    path = tmp_path / "big.yaml"
    path.write_text(big)
    script, problems = check_script(path)
    assert script is None and "file is too large" in problems[0].message


def test_a_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path) -> None:
    """Reading /dev/zero (st_size 0) as a script never ended."""
    script, problems = check_script(Path("/dev/zero"))
    assert script is None and problems[0].message == "not a regular file"
    script, problems = check_script(tmp_path)
    assert script is None and problems[0].message == "not a regular file"


def test_an_intent_file_that_is_not_a_regular_file_is_a_problem(tmp_path) -> None:
    text = SHIPPED["inbound_shop.yaml"].replace("../data/shop_intents.yaml", "/dev/zero")
    assert "intents: /dev/zero" in text
    assert "cannot read intent data file /dev/zero: not a regular file" in problem_of(text)


def test_a_deeply_nested_intent_file_is_a_problem_not_a_recursion_error(tmp_path) -> None:
    (tmp_path / "intents.yaml").write_text("intents: " + "[" * 1500 + "]" * 1500)
    text = SHIPPED["inbound_shop.yaml"].replace("../data/shop_intents.yaml", "intents.yaml")
    with pytest.raises(ScriptError) as exc:
        load_script_text(text, "bot.yaml", tmp_path)
    assert "cannot read intent data file" in str(exc.value)


@pytest.mark.parametrize("key, value", [("dtmf", '["1\\n"]'), ("set", '{"x\\n": 1}')])
def test_script_names_with_a_trailing_newline_are_refused(key, value) -> None:
    text = SHIPPED["inbound_shop.yaml"]
    if key == "dtmf":
        text = text.replace("global:\n", f"global:\n  - dtmf: {value}\n    goto: goodbye\n", 1)
    else:
        text = text.replace("global:\n", f"global:\n  - do: [{{set: {value}}}]\n", 1)
    problem_of(text)


def test_the_shipped_scripts_use_no_anchors_and_still_load() -> None:
    for name in SHIPPED:
        assert isinstance(load_script(SCRIPTS / name), Script)
