"""A service's GET /metrics as the samples Prometheus would read from it."""

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


async def metric_samples(client: httpx.AsyncClient) -> list[Sample]:
    """Every sample /metrics shows, after checking it answers 200 in the text format."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
