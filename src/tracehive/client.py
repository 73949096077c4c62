"""A Python client for a running tracehive server: sessions and exported events as plain dicts
(``.to_pandas()`` / ``.to_polars()`` where installed), privacy settings, erasing a user.

    from tracehive import Client
    client = Client("http://127.0.0.1:8418", api_key)
    frame = client.sessions(filter='user_properties.plan = "pro"', project="shop").to_pandas()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8418"
PAGE = 1000


class ServerError(RuntimeError):
    """The server refused a request; the message is its ``detail``."""


class Records(list):
    """Rows as plain dicts, convertible to data frames (namespaces become JSON text columns)."""

    def to_arrow(self) -> Any:
        from tracehive.privacy.export import to_arrow  # pyarrow: only for frames, not for every import

        return to_arrow(list(self))

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        import polars

        return polars.from_arrow(self.to_arrow())


def _params(**given: Any) -> dict[str, Any]:
    return {key.rstrip("_"): value for key, value in given.items() if value is not None}


class Client:
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 600.0) -> None:
        url = url or os.environ.get("TRACEHIVE_URL") or DEFAULT_URL
        api_key = api_key or os.environ.get("TRACEHIVE_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ServerError(f"{response.status_code}: {_detail(response)}")
        return response.json()

    def sessions(
        self,
        filter: str | None = None,
        project: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        limit: int | None = None,
    ) -> Records:
        """Sessions newest first (all of them unless ``limit``), each a dict as the API gives it."""
        found = Records()
        cursor = None
        while limit is None or len(found) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(found))
            params = _params(filter=filter, project=project, from_=from_, to=to, limit=size, cursor=cursor)
            page = self._call("GET", "/api/v1/sessions", params=params)
            found.extend(page["sessions"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return found

    def events(
        self, filter: str | None = None, project: str | None = None, from_: str | None = None, to: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event of the selected sessions, with its session's fields, streamed one at a time."""
        params = _params(filter=filter, project=project, from_=from_, to=to)
        with self._http.stream("GET", "/api/v1/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise ServerError(f"{response.status_code}: {_detail(response)}")
            for line in response.iter_lines():
                if line:
                    yield orjson.loads(line)

    def export(self, **selection: Any) -> Records:
        """The events :meth:`events` streams, all in memory (use ``tracehive export`` for big ones)."""
        return Records(self.events(**selection))

    def privacy(self, project: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/projects/{project}/privacy")

    def set_privacy(self, project: str, **changes: Any) -> dict[str, Any]:
        """Save new settings: ``redact=[...]`` and/or ``retention_days=N`` (None: keep forever)."""
        return self._call("PUT", f"/api/v1/projects/{project}/privacy", json=changes)

    def privacy_secret(self, project: str) -> str:
        """The project's hashing secret, for ``HoneyHiveTracer.init(redact={"rules": ..., "secret": ...})``."""
        return self._call("GET", f"/api/v1/projects/{project}/privacy/secret")["secret"]

    def erase_user(self, project: str, user_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/projects/{project}/erase", json={"user_id": user_id})

    def audit(self, project: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/audit", params=_params(project=project))["entries"]


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
