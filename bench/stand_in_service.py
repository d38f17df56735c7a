"""A FastAPI app shaped like a GitTix route; uvicorn serves it as the proxy benchmark's upstream."""

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/users/currentuser")
    async def current_user() -> JSONResponse:
        response = JSONResponse({"currentUser": None})
        response.set_cookie("bench", "1", secure=True, httponly=True)
        return response

    @app.post("/api/users/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    return app
