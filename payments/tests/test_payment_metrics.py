"""payments' /metrics: charges counted by outcome as buyers pay."""

from typing import Any

import httpx
from payment_requests import Cookies, pay
from prometheus_client.parser import text_string_to_metric_families


async def charges(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
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
