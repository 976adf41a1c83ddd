"""Failover says whether any provider saw a send it could not make: a channel cap's token
goes back only for a send none saw (`NotAttempted`)."""

from __future__ import annotations

import pytest

from txmsg.core.breaker import BreakerSettings
from txmsg.core.delivery import NotAttempted, TransientSendError
from txmsg.engine.failover import Failover, Relay


class Provider:
    def __init__(self, error: TransientSendError) -> None:
        self.error = error
        self.calls = 0

    async def send(self) -> str:
        self.calls += 1
        raise self.error

    async def close(self) -> None:
        pass


def failover(*providers: Provider) -> Failover[Provider]:
    relays = [Relay(f"relay{i}", p) for i, p in enumerate(providers)]
    return Failover(relays, BreakerSettings(failures=1, cool_down=600), clock=lambda: 0.0)


async def test_every_provider_resting_is_a_send_none_saw() -> None:
    down = [Provider(TransientSendError("421 busy")), Provider(TransientSendError("451 later"))]
    relays = failover(*down)
    with pytest.raises(TransientSendError) as first:
        await relays.call(lambda p: p.send())
    assert not isinstance(first.value, NotAttempted)  # both tried: each may have counted it
    with pytest.raises(NotAttempted):  # both breakers open: nothing went out
        await relays.call(lambda p: p.send())
    assert [p.calls for p in down] == [1, 1]


@pytest.mark.parametrize("closed_first", [True, False])
async def test_a_provider_that_saw_it_outweighs_a_closed_one(closed_first: bool) -> None:
    seen = Provider(TransientSendError("421 busy"))
    closed = Provider(NotAttempted("SMTP pool is closed"))
    relays = failover(*((closed, seen) if closed_first else (seen, closed)))
    with pytest.raises(TransientSendError) as caught:
        await relays.call(lambda p: p.send())
    assert caught.value is seen.error
    only_closed = failover(Provider(NotAttempted("SMTP pool is closed")))
    with pytest.raises(NotAttempted):
        await only_closed.call(lambda p: p.send())
