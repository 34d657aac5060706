"""`callfleet bot` — check bot scripts and try them in the terminal.

    callfleet bot check FILE [FILE ...] [--json]   validate; exit 2 listing every problem
    callfleet bot chat FILE [--model DIR] [--json] text conversation (stdin when piped)
    callfleet bot orders [--port N]                run the demo order service
    callfleet bots deploy FILE [FILE ...]          make them live on every gateway replica

`check` prints ``file:line:column: error: what (expected ...)`` per problem. `chat` needs
no cluster and no model: without ``--model`` the intent comes from a fallback classifier
built from the script's own intent utterances, and says so. HTTP lookups go to the
built-in demo order service in-process unless ``--service NAME=URL`` is given; FAQ
actions ask the knowledge base in BM25 mode (``--faq none`` to turn it off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bots import demo_orders
from bots.demo_orders import serve
from bots.kb import KnowledgeBase, KnowledgeBaseSettings
from bots.script import ScriptError, check_script, load_script
from bots.script.chat import COMMANDS, ChatSession
from bots.script.engine import ScriptBot
from bots.script.fallback_nlu import FallbackEmotionClassifier, FallbackIntentClassifier
from cluster.cli.bot_deploy import print_check, redis_url_parents, register_deploy
from cluster.cli.common import CliError, console, reports_errors
from training.models.outputs import EmotionResult, IntentResult
from training.models.registry import ModelNotFoundError, ModelRegistry

__all__ = ["register"]

SHOP_DATA = Path(__file__).resolve().parents[2] / "bots" / "data" / "shop_intents.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bot`` and its actions to the top-level `subparsers`."""
    bot = subparsers.add_parser(
        "bot", aliases=["bots"],
        help="check, try and deploy bot scripts; run the demo order service",
        description="Work on bot scripts (YAML, see docs/bots.md): check and chat need no "
        "cluster; deploy makes them live on a running one.")
    sub = bot.add_subparsers(dest="bot_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "check", help="validate bot scripts with precise errors",
        description="Validate bot scripts: YAML syntax, keys, unknown or unreachable states, "
        "unknown intents (against the script's intent file), bad conditions and templates, "
        "unknown variables. Prints file:line:column for each problem. Exit 0 when every file "
        "is valid, 2 when any has an error.")
    p.add_argument("files", nargs="+", metavar="FILE", help="bot script(s) (.yaml)")
    p.add_argument("--functions", metavar="NAMES",
                   help="comma-separated lookup functions the runtime registers; when given, "
                   "lookups naming other functions are errors")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_bot_check)

    p = sub.add_parser(
        "chat", help="talk to a bot script in the terminal (or from stdin)",
        description="Run a bot script as a text conversation: type what the caller says and "
        "see the bot's reply, the detected intent and confidence, entities, state and actions. "
        "When stdin is not a terminal, each line is one caller turn. Commands: /dtmf KEYS, "
        "/silence, /emotion LABEL [SCORE], /state, /help, /quit.",
        epilog="example: printf 'where is my order\\nA1002\\nno thanks\\n' | "
        "callfleet bot chat bots/scripts/inbound_shop.yaml --json")
    p.add_argument("file", metavar="FILE", help="bot script (.yaml)")
    p.add_argument("--model", metavar="DIR",
                   help="trained intent model: a model registry folder (uses the current intent "
                   "version) or a model version folder; default: the fallback classifier")
    p.add_argument("--customer", action="append", default=[], metavar="KEY=VALUE",
                   help="customer field for templates and rules, e.g. name=Sam or vip=true "
                   "(repeatable)")
    p.add_argument("--emotion", choices=("neutral", "fallback"), default="neutral",
                   help="emotion of each line: 'neutral' (default; use /emotion to try the anger "
                   "rules) or 'fallback', a rough classifier built from the bots' emotion "
                   "utterances (it misreads plenty)")
    p.add_argument("--faq", choices=("kb", "none"), default="kb",
                   help="where `faq` actions get answers: 'kb' (default) the knowledge base "
                   "in keyword (BM25) mode, no model needed; 'none' never answers")
    p.add_argument("--variant", metavar="NAME", help="A/B variant (default: chosen from the call uuid)")
    p.add_argument("--call-uuid", "--call-id", dest="call_uuid", default="chat-1", metavar="UUID",
                   help="the call's uuid (default chat-1; --call-id is the old spelling)")
    p.add_argument("--service", action="append", default=[], metavar="NAME=URL",
                   help="send the script's HTTP service NAME to URL (default: the in-process "
                   "demo order service answers every service)")
    p.add_argument("--json", action="store_true", help="print one JSON object per turn")
    p.set_defaults(func=cmd_bot_chat)

    register_deploy(sub, redis_url_parents())

    p = sub.add_parser(
        "orders", help="run the demo order service the inbound bot looks orders up in",
        description="Serve the demo orders (A1001..A1006) on GET /orders/{id} until interrupted.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S",
                   help="answer each order request after S seconds (to try lookup timeouts)")
    p.set_defaults(func=cmd_bot_orders)


# -- check ----------------------------------------------------------------------------------


def cmd_bot_check(args: argparse.Namespace) -> int:

    functions = ({f.strip() for f in args.functions.split(",") if f.strip()}
                 if args.functions else None)
    results = []
    failed = False
    for file in args.files:
        script, problems = check_script(file, functions)
        bad = [p for p in problems if p.severity == "error" or args.strict]
        failed = failed or bool(bad) or script is None
        results.append({"file": file, "ok": not bad and script is not None,
                        "summary": script.summary() if script else None,
                        "problems": [p.to_dict() for p in problems]})
        if not args.json:
            print_check(file, script, problems, bool(bad))
    if args.json:
        print(json.dumps({"ok": not failed, "files": results}, indent=2))
    return 2 if failed else 0


# -- chat -----------------------------------------------------------------------------------


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{what} must look like KEY=VALUE, got {item!r}")
        found[key.strip()] = _typed(value.strip())
    return found


def _typed(value: str) -> Any:
    """Command-line values as scripts expect them: true/false, numbers, else text."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _intent_classifier(args: argparse.Namespace, script: Any):

    if not args.model:
        clf = FallbackIntentClassifier.from_file(script.intents_file)
        return clf.classify, clf.source
    folder = Path(args.model)
    if not folder.is_dir():
        raise CliError(f"--model {folder}: no such folder (expected a model registry "
                       "or an intent model version folder)")
    from training.models.intent import IntentClassifier  # torch: only when asked for

    try:
        if (folder / "config.json").is_file():
            model = IntentClassifier(folder)
        else:
            model = IntentClassifier.from_registry(ModelRegistry(folder))
    except (ModelNotFoundError, OSError, ValueError) as exc:
        raise CliError(f"--model {folder}: {exc}") from None
    missing = sorted(script.intents - set(model.labels))
    if missing:
        console.print(f"[yellow]warning: model {model.version} does not know the "
                      f"script's intents {missing}[/yellow]")

    def classify(text: str) -> IntentResult:
        return replace(model.predict_batch([text])[0], model_version=model.version)

    return classify, f"intent model {model.version} ({folder})"


def _faq_lookup(choice: str):
    """The knowledge base's answer function (BM25 mode: quick, no torch), or None."""
    if choice == "none":
        return None
    try:

        return KnowledgeBase.load(KnowledgeBaseSettings(mode="bm25")).answer
    except Exception as exc:  # the chat goes on; FAQ questions just get no answer
        console.print(f"[yellow]knowledge base unavailable ({escape(str(exc))}); "
                      "FAQ questions get no answer[/yellow]")
        return None


@reports_errors()
def cmd_bot_chat(args: argparse.Namespace) -> int:


    customer = _pairs(args.customer, "--customer")
    services = {k: str(v) for k, v in _pairs(args.service, "--service").items()}
    try:
        script = load_script(args.file)
    except ScriptError as exc:
        for problem in exc.problems:  # one file:line:column line each, as `bot check` prints
            print(problem, file=sys.stderr)
        return 2
    if args.variant and args.variant not in script.spec.variants:
        raise CliError(f"bot {script.name} has no variant {args.variant!r} "
                       f"(variants: {', '.join(sorted(script.spec.variants)) or 'none'})")
    classify, source = _intent_classifier(args, script)
    if args.emotion == "fallback":
        emotion_classify = FallbackEmotionClassifier.from_files(SHOP_DATA, script.intents_file).classify
    else:
        def emotion_classify(text: str) -> EmotionResult:
            return EmotionResult("neutral", {"neutral": 1.0}, {"neutral": 1.0})
    loop = asyncio.new_event_loop()
    try:
        http = None if services else demo_orders.asgi_client()
        bot = ScriptBot(script, functions={"find_order": demo_orders.find_order}, http=http,
                        services=services, faq_lookup=_faq_lookup(args.faq))
        state = bot.new_state(call_uuid=args.call_uuid, customer=customer, variant=args.variant)
        session = ChatSession(bot, classify, emotion_classify, state)
        view = ChatView(args.json, interactive=sys.stdin.isatty() and not args.json)
        view.header(script, source, state)
        view.turn(loop.run_until_complete(session.start()))
        for line in view.lines():
            try:
                record = loop.run_until_complete(session.handle(line))
            except ValueError as exc:  # ChatCommandError
                view.note(str(exc), error=True)
                continue
            if record is not None:
                view.turn(record)
            elif line.strip() in ("/state", "/help"):
                view.show(line.strip(), state)
            if session.finished:
                break
        view.footer(state)
        loop.run_until_complete(bot.aclose())
        if http is not None:
            loop.run_until_complete(http.aclose())
    finally:
        loop.close()
    return 0


class ChatView:
    """How a chat looks: rich text for people, one JSON object per turn with ``--json``."""

    def __init__(self, as_json: bool, interactive: bool) -> None:
        self.as_json = as_json
        self.interactive = interactive
        self.out = Console(highlight=False, soft_wrap=not interactive)
        self.err = Console(stderr=True, highlight=False)

    def header(self, script: Any, source: str, state: Any) -> None:
        if self.as_json:
            return
        variant = f" · variant [bold]{state.variant}[/bold]" if state.variant else ""
        self.out.print(f"[bold]{script.name}[/bold] ({escape(script.file)}, version {script.sha})"
                       f"{variant}\n[dim]intent: {escape(source)} · /help for commands[/dim]")

    def lines(self):
        if not self.interactive:
            yield from sys.stdin
            return
        while True:
            try:
                yield self.out.input("[bold cyan]caller ›[/bold cyan] ")
            except EOFError:
                return

    def note(self, text: str, error: bool = False) -> None:
        colour = "red" if error else "dim"
        self.err.print(f"[{colour}]{escape(text)}[/{colour}]")

    def show(self, command: str, state: Any) -> None:
        if command == "/state":
            self.out.print_json(state.to_json())
        else:

            for name, text in COMMANDS.items():
                self.out.print(f"  [bold]{escape(name)}[/bold]  {escape(text)}")

    def turn(self, record: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(record, default=str), flush=True)
            return
        p = self.out.print
        if record["event"] != "start" and not self.interactive:
            said = {"dtmf": f"[keys {record['caller']}]", "no_input": "[silence]"}.get(
                record["event"], record["caller"])
            p(f"[bold cyan]caller ›[/bold cyan] {escape(str(said))}")
        if record.get("intent"):
            intent = record["intent"]
            flag = " [yellow](out of scope)[/yellow]" if intent.get("out_of_scope") else ""
            emotion = (record.get("emotion") or {}).get("label", "-")
            entities = ", ".join(f"{k}={v}" for k, v in (record.get("entities") or {}).items())
            p(f"[dim]  intent[/dim] {escape(str(intent.get('label')))} "
              f"{float(intent.get('confidence', 0)):.2f}{flag}[dim] · emotion {escape(str(emotion))}"
              + (f" · entities {escape(entities)}" if entities else "") + "[/dim]")
        for segment in record["segments"]:
            played = f"[magenta]\\[plays {escape(segment['play'])}][/magenta] " if "play" in segment else ""
            p(f"[bold green]bot    ›[/bold green] {played}{escape(segment.get('say') or segment['text'])}")
        if not record["understood"]:
            p("[dim]  (not understood: re-prompt)[/dim]")
        for action in record["actions"]:
            kind = action.pop("kind")
            brief = action.pop("brief", None)
            fields = " ".join(f"{k}={v}" for k, v in action.items())
            p(f"[bold yellow]  → {kind}[/bold yellow] {escape(fields)}")
            if brief:
                p(f"[dim]    brief: {escape(brief)}[/dim]")
        p(f"[dim]  state {record['state']}" + (" · call ended" if record["end_call"] else "")
          + "[/dim]")

    def footer(self, state: Any) -> None:
        if not self.as_json:
            ended = "call ended" if state.ended else "chat ended"
            outcome = f", outcome {state.outcome}" if state.outcome else ""
            self.out.print(f"[dim]{ended} after {state.turns} turn(s){outcome}[/dim]")


# -- orders -----------------------------------------------------------------------------------


@reports_errors()
def cmd_bot_orders(args: argparse.Namespace) -> int:

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1..65535, got {args.port}")
    console.print(f"demo order service on http://{args.host}:{args.port}/orders/A1001 "
                  "(Ctrl-C to stop)")
    serve(args.host, args.port, args.delay)
    return 0
