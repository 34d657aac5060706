"""The bots a gateway replica serves: the script library (validated, hot-reloaded: a
broken edit is rejected and the previous version keeps serving), the lookup functions
scripts may call, FAQ answers from the knowledge base, and the escalation policy.

A call's bot is chosen by its ``callfleet_bot`` channel variable (set by the dialplan or
the dialer, read from the ESL controller's record of the call by the fork admission and
passed as the metadata's ``bot``; never taken from the fork itself), else the inbound
default.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from bots.escalation import EscalationPolicy
from bots.functions import FUNCTIONS
from bots.kb import KnowledgeBase
from bots.script.engine import ScriptBot
from bots.script.library import ScriptLibrary, UnknownScript
from cluster.records.bot_scripts import ReplicaScripts, materialise
from configs.settings import Settings

log = logging.getLogger("callfleet.bots")

PROJECT = Path(__file__).resolve().parents[2]


class BotRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings.bots
        folder = Path(self.settings.scripts_dir)
        self.folder = folder if folder.is_absolute() else PROJECT / folder
        self.library = ScriptLibrary(set(FUNCTIONS), keep_versions=self.settings.keep_versions)
        for report in self.library.load_dir(self.folder):
            _log_report(report)
        self.policy = EscalationPolicy(settings.escalation)
        self.faq = self._knowledge_base(settings)
        self._bots: dict[tuple[str, str], ScriptBot] = {}
        self._checked = time.monotonic()
        # scripts deployed with `callfleet bots deploy` (cluster/records/bot_scripts.py),
        # written to this node's cache folder and loaded like the ones on disk
        self.published_folder = Path(settings.cache_dir) / "published-bots"
        self._published_gen = 0
        self._watch: asyncio.Task | None = None
        self.about: dict[str, Any] = {}  # where this replica runs, sent with each acknowledgement

    @staticmethod
    def _knowledge_base(settings: Settings):
        """BM25 in the call path: fast and without a second encoder per replica."""

        try:
            kb = KnowledgeBase.load(settings.kb.model_copy(update={"mode": "bm25"}),
                                    state_dir=settings.state_dir)
            return kb.answer
        except Exception as exc:  # FAQ answers are a nicety; the bots work without them
            log.warning("knowledge base unavailable for FAQ answers: %s", exc)
            return None

    async def for_call(self, meta) -> ScriptBot:
        await self._maybe_refresh()
        name = (meta.extra or {}).get("bot") or self.settings.inbound_script
        try:
            script = self.library.get(name)
        except UnknownScript:
            log.warning("unknown bot %r requested; using %s", name, self.settings.inbound_script)
            script = self.library.get(self.settings.inbound_script)
        key = (script.spec.bot, script.sha)
        if key not in self._bots:
            self._bots[key] = ScriptBot(script, functions=FUNCTIONS, services=self.settings.services,
                                        faq_lookup=self.faq, escalation=self.policy)
        return self._bots[key]

    async def _maybe_refresh(self) -> None:
        every = self.settings.reload_interval_s
        if every and time.monotonic() - self._checked >= every:
            self._checked = time.monotonic()
            for report in await asyncio.to_thread(self.library.refresh):
                _log_report(report)

    async def sync_published(self, replica: ReplicaScripts) -> int:
        """Load a newly published bundle (if any), then acknowledge what this replica
        serves; returns the generation loaded."""
        if await replica.generation() != self._published_gen:
            gen, files = await replica.bundle()
            scripts = await asyncio.to_thread(materialise, files, self.published_folder)
            for path in scripts:
                _log_report(await asyncio.to_thread(self.library.load, path))
            self._published_gen = gen
        status = self.status()
        await replica.acknowledge(self._published_gen, self.serving(), status["rejected"],
                                  self.about)
        return self._published_gen

    def watch_published(self, replica: ReplicaScripts, every_s: float = 1.0) -> None:
        """Keep syncing in the background (call from the replica's event loop)."""
        async def loop() -> None:
            while True:
                try:
                    await self.sync_published(replica)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: keep serving what is loaded
                    log.warning("published bot scripts not synced: %s", type(exc).__name__)
                await asyncio.sleep(every_s)

        self._watch = asyncio.get_running_loop().create_task(loop())

    async def stop_watching(self, replica: ReplicaScripts) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        try:
            await replica.forget()
        finally:
            await replica.aclose()

    def serving(self) -> dict[str, str]:
        """bot -> the version (sha) serving now."""
        return {name: self.library.get(name).sha for name in self.library.names()}

    def status(self) -> dict[str, Any]:
        """The bots serving, and the files whose version on disk is refused (with how many
        problems); a script serving with warnings is a serving one, not a refused one."""
        return {"bots": self.library.names(),
                "rejected": {f: len(p) for f, p in self.library.last_errors.items()}}


def _log_report(report) -> None:
    """A refused script is an ERROR; one serving with warnings a WARNING, once per version."""
    if not report.swapped:
        if report.previous:
            log.error("bot script change to %s rejected, previous version serving: %s",
                      report.file, _problems(report))
        else:
            log.error("bot script %s rejected: %s", report.file, _problems(report))
    elif report.problems and report.version != report.previous:
        log.warning("bot script %s version %s serving with %d warning(s): %s", report.file,
                    report.version, len(report.problems), _problems(report))


def _problems(report) -> str:
    return "; ".join(str(p) for p in report.problems[:5])
