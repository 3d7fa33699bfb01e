"""A few Client-Server API calls matrix-nio does not make (cross-signing, secret storage, status).

One aiohttp session per :class:`MatrixAPI`, authorised with the bot's access token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=60)


class MatrixAPIError(Exception):
    """The homeserver answered a request with an error."""

    def __init__(self, method: str, path: str, status: int, body: dict) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body.get('errcode', '')} {body.get('error', '')}".strip())
        self.status, self.body = status, body


class MatrixAPI:
    """Authorised JSON requests to one homeserver."""

    def __init__(self, homeserver: str, access_token: str) -> None:
        self.base = homeserver.rstrip("/") + "/_matrix/client/v3"
        self.headers = {"Authorization": f"Bearer {access_token}"}
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MatrixAPI:
        self._http = aiohttp.ClientSession(timeout=TIMEOUT, headers=self.headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http:
            await self._http.close()

    async def call(self, method: str, path: str, body: dict | None = None, ok: tuple[int, ...] = (200,)) -> tuple[int, dict]:
        """Send one request; returns (status, JSON body), raising :class:`MatrixAPIError` unless status is in ``ok``."""
        assert self._http is not None, "use MatrixAPI as an async context manager"
        async with self._http.request(method, self.base + path, json=body) as response:
            try:
                data: Any = await response.json(content_type=None)
            except ValueError:
                data = {}
            data = data if isinstance(data, dict) else {}
            if response.status not in ok:
                raise MatrixAPIError(method, path, response.status, data)
            return response.status, data

    async def get_account_data(self, user_id: str, kind: str) -> dict | None:
        """The user's global account data of type ``kind``, or None if it was never set."""
        status, data = await self.call("GET", f"/user/{quote(user_id)}/account_data/{quote(kind)}", ok=(200, 404))
        return data if status == 200 else None

    async def put_account_data(self, user_id: str, kind: str, content: dict) -> None:
        """Set the user's global account data of type ``kind``."""
        await self.call("PUT", f"/user/{quote(user_id)}/account_data/{quote(kind)}", content)

    async def query_keys(self, user_id: str) -> dict:
        """The /keys/query answer for one user: device keys and cross-signing keys."""
        return (await self.call("POST", "/keys/query", {"device_keys": {user_id: []}}))[1]
