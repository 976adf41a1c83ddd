"""The dispatcher's targeting step for a claimed batch: profiles, typology, fatigue.

One read per batch (profiles, denylist, quarantine, rules) and, when fatigue rules apply, one
reservation handed to the write funnel: never a query per event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from txmsg.core.fatigue import FatigueCheck, FatigueRequest
from txmsg.core.kinds import Channel, TargetType
from txmsg.core.queue import ClaimedEvent
from txmsg.core.statuses import ConfigState, EventStatus
from txmsg.core.targeting import Target, lookup_key, resolve
from txmsg.core.unsubscribe import SECRET_NAME, UnsubscribeClaim, make_token, unsubscribe_url
from txmsg.store.db import Database
from txmsg.store.routing import Route
from txmsg.store.secrets import ServerSecrets
from txmsg.store.targeting import load_batch

log = logging.getLogger(__name__)
Reserve = Callable[[FatigueCheck], Awaitable[dict[str, str | None]]]


class Targeting:
    def __init__(
        self,
        db: Database,
        secrets: ServerSecrets,
        public_url: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._db = db
        # The database's time: expiries were stamped by another process.
        self._clock = clock or db.clock.now
        self._secrets = secrets
        self._public_url = public_url
        self._secret: str | None = None

    async def prepare(
        self,
        claimed: list[ClaimedEvent],
        routes: Mapping[str, Route | None],
        reserve: Reserve,
    ) -> dict[int, Target]:
        """event id -> its target (or the status it ends with) for every routable event."""
        keys: dict[str, set[str]] = {}
        addresses: set[tuple[str, str]] = set()
        profile_based = False
        now = self._clock()
        # Only events that are going to be sent now: a fatigue reservation is a send.
        claimed = [e for e in claimed if e.expires_at > now and _live(routes.get(e.event_id))]
        for event in claimed:
            route = routes[event.event_id]
            assert route is not None
            if route.target == TargetType.PROFILE:
                profile_based = True
                key = lookup_key(
                    route.target, route.reconciliation, event.email, event.ctx, event.mobile_phone
                )
                if key is not None:
                    keys.setdefault(key[0], set()).add(key[1])
            elif address := event.mobile_phone if route.channel == Channel.SMS else event.email:
                addresses.add((route.channel, address))
        facts = await self._db.read(load_batch, keys, addresses, profile_based)
        targets: dict[int, Target] = {}
        requests: list[FatigueRequest] = []
        for event in claimed:
            route = routes[event.event_id]
            assert route is not None
            target = resolve(
                target=route.target,
                channel=route.channel,
                reconciliation=route.reconciliation,
                email=event.email,
                mobile_phone=event.mobile_phone,
                ctx=event.ctx,
                profiles=facts.profiles,
                lists=facts.lists,
            )
            targets[event.id] = target
            if target.status is None and target.profile is not None and facts.rules:
                profile = target.profile
                requests.append(
                    FatigueRequest(
                        event.pkey, profile.profile_id, route.channel, profile.attributes
                    )
                )
        if requests:
            decisions = await reserve(FatigueCheck(requests, facts.rules))
            for event in claimed:
                rule = decisions.get(event.pkey)
                if rule is not None:
                    kept = targets[event.id]
                    targets[event.id] = Target(
                        kept.address, kept.profile, EventStatus.IGNORED, f"fatigue:{rule}"
                    )
        if profile_based and self._secret is None:
            self._secret = await self._secrets.get_or_create(SECRET_NAME)
        return targets

    def unsubscribe_url(self, channel: str, profile_id: str, pkey: str) -> str:
        assert self._secret is not None, "prepare() loads the secret for profile-based events"
        token = make_token(self._secret, UnsubscribeClaim(channel, profile_id, pkey))
        return unsubscribe_url(self._public_url, token)


def _live(route: Route | None) -> bool:
    return (
        route is not None
        and route.state == ConfigState.PUBLISHED
        and route.published_version is not None
    )
