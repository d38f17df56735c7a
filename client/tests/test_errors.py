"""Unknown pages get a 404 page a person can read; unknown /api/* paths keep the JSON format."""

import httpx
import pytest
from page_markup import parse_page


@pytest.mark.parametrize(
    "path", ["/no-such-page", "/tickets/not-an-id", "/orders/123", "/tickets/"]
)
async def test_unknown_page_is_a_404_page_with_the_header_and_a_way_back(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    page = parse_page(response.text)
    assert page.title == "Page not found · GitTix"
    assert page.link_named("See the tickets for sale").attrs["href"] == "/"
    page.link_named("Sign in")


async def test_unknown_api_path_answers_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}


async def test_missing_static_file_is_a_plain_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/js/missing.js")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}


async def test_posting_to_a_page_is_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.post("/signin")

    assert response.status_code == 405
    assert response.json() == {"errors": [{"message": "Method not allowed"}]}
