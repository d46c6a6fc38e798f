"""What the handlers share: the settings and the running parts of one service."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from download.fetch import FetchLimits
from service.callbacks import Callbacks
from service.content import ContentStore
from service.jobs import JobRunner
from service.midi import MidiMaker
from service.mixes import Mixer
from service.player_mixes import PlayerMixes
from service.quota import StorageQuota
from service.settings import ServiceSettings
from service.store import Store


@dataclass(slots=True)
class Service:
    settings: ServiceSettings
    store: Store
    content: ContentStore
    callbacks: Callbacks
    runner: JobRunner
    quota: StorageQuota
    fetch_limits: FetchLimits
    callback_limits: FetchLimits
    link_secret: bytes
    openapi: str
    mixer: Mixer
    player_mixes: PlayerMixes
    midi: MidiMaker
    # Where links point: STEMBOT_PUBLIC_URL, else the address listened on (set once bound);
    # never a request's Host header, which the caller chooses.
    base_url: str = ""

    @property
    def content_base(self) -> str:
        """Where signed content links point: STEMBOT_CONTENT_URL, else `base_url`."""
        return self.settings.content_url or self.base_url


SERVICE = web.AppKey("service", Service)
