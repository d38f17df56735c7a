"""payments' /metrics: charges counted by outcome as buyers pay."""

from typing import Any

import httpx
from gittix_testing.metrics import metric_samples
from payment_requests import Cookies, pay


async def charges(client: httpx.AsyncClient) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for sample in await metric_samples(client)
        if sample.name == "gittix_charges_total"
    }


async def test_a_payment_counts_one_succeeded_charge_and_no_other_outcome(
    client: httpx.AsyncClient,
    order: Any,
    buyer: Cookies,
) -> None:
    before = await charges(client)
    paid = await pay(client, buyer, order.id)

    assert paid.status_code == 201
    after = await charges(client)
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}
    assert {k: v for k, v in moved.items() if v} == {"succeeded": 1}
