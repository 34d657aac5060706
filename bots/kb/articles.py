"""Knowledge-base articles and the loaders that make them from our sources.

Two sources today:

* ``shop_faq`` — the demo shop's FAQ (``bots/data/shop_faq.yaml``), written for callers:
  the first sentences of a body are what the bot says on the phone.
* ``abcd`` — ASAPP's ABCD agent guidelines (``guidelines.json`` + ``ontology.json`` +
  ``kb.json``): one article per subflow ("Initiate Refund", "Manage Change Address"...),
  its description and instructions as the opening paragraph and each agent action as a
  key step. These are for agents, not for reading out to callers.

Any problem in a file raises `ArticleLoadError` naming the file, the place in it and what
was expected; a half-loaded knowledge base is never returned.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ABCD_SOURCE", "SHOP_FAQ_SOURCE", "Article", "ArticleLoadError", "KnowledgeBaseError",
    "check_unique_ids", "load_abcd", "load_shop_faq",
]

log = logging.getLogger("callfleet.bots.kb")

SHOP_FAQ_SOURCE = "shop_faq"
ABCD_SOURCE = "abcd"

_FAQ_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")  # \Z: "$" allows a trailing newline
_BUTTON_RE = re.compile(r"\[([^\]]+)\]")


class KnowledgeBaseError(Exception):
    """Base of every knowledge-base error the caller should report as it is."""


class ArticleLoadError(KnowledgeBaseError):
    """A source file is missing, unreadable or not in the expected shape."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class Article(BaseModel):
    """One knowledge-base article: a question/answer or a procedure, with key steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="unique across sources, e.g. 'shop/returns'")
    title: str = Field(min_length=1)
    source: str = Field(description="'shop_faq' or 'abcd'")
    body: str = Field(min_length=1, description="paragraphs separated by blank lines")
    steps: list[str] = Field(default_factory=list, description="key steps, in order")
    tags: list[str] = Field(default_factory=list, description="extra search words")

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class _FaqEntry(BaseModel):
    """One article as written in the shop FAQ YAML."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)
    steps: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _FAQ_ID_RE.match(value):
            raise ValueError("must be lowercase words joined by '-' (e.g. 'order-tracking')")
        return value


# -- shop FAQ ----------------------------------------------------------------------------


def load_shop_faq(path: Path | str) -> list[Article]:
    """Articles of a shop FAQ YAML file (``articles:`` list of id/title/body/steps/tags)."""
    path = Path(path)
    doc = _read(path, _yaml_load, "YAML")
    if not isinstance(doc, dict) or not isinstance(doc.get("articles"), list):
        raise ArticleLoadError(path, "expected a mapping with an 'articles:' list at the top")
    articles: list[Article] = []
    for number, raw in enumerate(doc["articles"], 1):
        where = f"article {number}" + (f" ({raw.get('id')!r})" if isinstance(raw, dict) else "")
        if not isinstance(raw, dict):
            raise ArticleLoadError(path, f"{where}: expected a mapping with id, title, body")
        try:
            entry = _FaqEntry(**raw)
        except ValidationError as exc:
            raise ArticleLoadError(path, f"{where}: {_validation_text(exc)}") from None
        articles.append(Article(
            id=f"shop/{entry.id}", title=entry.title.strip(), source=SHOP_FAQ_SOURCE,
            body=" ".join(entry.body.split()), steps=[s.strip() for s in entry.steps],
            tags=[t.strip() for t in entry.tags],
        ))
    if not articles:
        raise ArticleLoadError(path, "the 'articles:' list is empty")
    _check_unique(path, articles)
    log.debug("loaded %s shop FAQ articles from %s", len(articles), path)
    return articles


# -- ABCD --------------------------------------------------------------------------------


def load_abcd(folder: Path | str) -> list[Article]:
    """One article per ABCD subflow, id ``abcd/<flow>/<subflow>``.

    ``guidelines.json`` holds the readable text keyed by display names ("Product Defect" ->
    "Initiate Refund"); ``ontology.json`` holds the machine names of the same flows and
    subflows in the same order, and ``kb.json`` the action sequence of each subflow, used
    here to cross-check that the three files agree.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArticleLoadError(folder, "ABCD folder not found (set kb.abcd_dir, or null to skip it)")
    guidelines = _read(folder / "guidelines.json", json.loads, "JSON")
    ontology = _read(folder / "ontology.json", json.loads, "JSON")
    action_seqs = _read(folder / "kb.json", json.loads, "JSON")
    try:
        subflow_names: dict[str, list[str]] = ontology["intents"]["subflows"]
    except (KeyError, TypeError):
        raise ArticleLoadError(folder / "ontology.json",
                               "expected intents.subflows (flow -> list of subflow names)") from None
    if not isinstance(guidelines, dict):
        raise ArticleLoadError(folder / "guidelines.json", "expected a mapping of flow -> guideline")
    articles: list[Article] = []
    for flow_title, flow in guidelines.items():
        flow_key = _machine_name(flow_title)
        where = f"flow {flow_title!r}"
        if flow_key not in subflow_names:
            raise ArticleLoadError(folder / "ontology.json",
                                   f"no subflows listed for {where} (looked for {flow_key!r})")
        if not isinstance(flow, dict) or not isinstance(flow.get("subflows"), dict):
            raise ArticleLoadError(folder / "guidelines.json", f"{where}: expected 'subflows' mapping")
        keys = subflow_names[flow_key]
        if len(keys) != len(flow["subflows"]):
            raise ArticleLoadError(
                folder / "guidelines.json",
                f"{where} has {len(flow['subflows'])} subflows but ontology.json lists {len(keys)}",
            )
        for key, (title, subflow) in zip(keys, flow["subflows"].items(), strict=True):
            if key not in action_seqs:
                log.warning("ABCD subflow %s/%s has no action sequence in kb.json", flow_key, key)
            try:
                articles.append(_abcd_article(flow_title, flow, key, title, subflow))
            except (KeyError, TypeError, AttributeError, ValidationError) as exc:
                raise ArticleLoadError(
                    folder / "guidelines.json",
                    f"{where}, subflow {title!r}: expected actions with type/button/text/"
                    f"subtext and an instructions list ({type(exc).__name__}: {exc})",
                ) from None
    if not articles:
        raise ArticleLoadError(folder / "guidelines.json", "no subflows found")
    _check_unique(folder, articles)
    log.debug("loaded %s ABCD articles from %s", len(articles), folder)
    return articles


def _abcd_article(flow_title: str, flow: dict[str, Any], key: str, title: str,
                  subflow: dict[str, Any]) -> Article:
    flow_key = _machine_name(flow_title)
    description = str(flow.get("description", "")).strip()
    instructions = [_readable(x) for x in subflow.get("instructions", [])]
    paragraphs = [_sentence(f"{title}: {description}" if description else title)]
    paragraphs += [_sentence(x) for x in instructions if x]
    steps: list[str] = []
    for action in subflow["actions"]:
        text = _readable(action["text"])
        details = [_readable(x) for x in action.get("subtext", []) if _readable(x)]
        if len(text) < 3:  # placeholder texts such as "x"
            text = ""
        if len(text.split()) <= 3 and details:  # "Option 1", "Communication": say what to do
            text = f"{text} - {details[0]}" if text else details[0]
            details = details[1:]
        button = str(action.get("button", "")).strip()
        if button and button != "N/A" and button.lower() not in text.lower():
            text = f"{button}: {text}" if text else button
        if not text:
            continue
        steps.append(_step_with_options(text, details))
        lead = text if not _introduces_list(text) else text.rstrip(":") + ":"
        paragraphs.append(" ".join(_sentence(x) for x in [lead, *details]))
    tags = [flow_key.replace("_", " "), key.replace("_", " ")]
    return Article(
        id=f"abcd/{flow_key}/{key}", title=f"{title} ({flow_title})",
        source=ABCD_SOURCE, body="\n\n".join(paragraphs), steps=steps, tags=tags,
    )


def _introduces_list(text: str) -> bool:
    return text.rstrip().endswith(":") or text.rstrip().lower().endswith((" are", " below"))


def _step_with_options(text: str, details: list[str]) -> str:
    """A step that introduces a short list ("valid options are:") names the options inline.

    Only when every detail starts with a short head ("Gift card - they want...") does it
    look like a list of options; otherwise the details are instructions and stay in the body.
    """
    stripped = text.rstrip().rstrip(":")
    if not details or not _introduces_list(text):
        return stripped
    heads = [d.split(" - ")[0].split("; ")[0].strip().rstrip(".") for d in details]
    if not all(0 < len(h) <= 40 for h in heads):
        return stripped
    return f"{stripped}: {', '.join(heads)}"


def _readable(text: Any) -> str:
    """ABCD UI text for reading: '[Pull up Account]' -> 'Pull up Account', tidy spaces."""
    text = _BUTTON_RE.sub(r"\1", str(text)).replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2019", "'").replace(" > ", "; ")
    return " ".join(text.split()).strip()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?:" else text + "."


def _machine_name(display: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", display.lower()).strip("_")


# -- shared ------------------------------------------------------------------------------


def check_unique_ids(articles: list[Article]) -> None:
    """Raise KnowledgeBaseError if two articles (from any sources) share an id."""
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            raise KnowledgeBaseError(f"article id {article.id!r} appears twice across sources")
        seen.add(article.id)


def _check_unique(path: Path, articles: list[Article]) -> None:
    try:
        check_unique_ids(articles)
    except KnowledgeBaseError as exc:
        raise ArticleLoadError(path, str(exc)) from None


def _yaml_load(text: str) -> Any:
    """Safe YAML, with libyaml's C parser where available (≈ 10x faster)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _read(path: Path, parse: Any, kind: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArticleLoadError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArticleLoadError(path, f"cannot read: {exc}") from None
    try:
        return parse(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ArticleLoadError(path, f"not valid {kind}: {exc}") from None


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(entry)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown field (allowed: id, title, body, steps, tags)")
        elif err["type"] == "missing":
            parts.append(f"{where}: required field missing")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
