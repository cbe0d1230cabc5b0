"""HTTP calls to one revision: a KServe v1 ``{"instances": [...]}`` body POSTed as JSON to the
revision's URL as it is (its own InferenceGraph's root, ``http://<graph>.<namespace>.svc``, where
KServe's router hands the body to the first stage; ``/`` when the URL has no path).

Connection failures, timeouts and 5xx answers are retried with a doubling backoff; a 4xx is
the request's own fault and is not. Errors name the URL (without credentials or query) and
the status, with a short excerpt of the answer. A user and password in the URL go as HTTP
Basic authorization, and are never shown.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from .errors import RequestError

EXCERPT = 200  # characters of an error answer shown
READ_LIMIT = 64 * 1024 * 1024  # bytes of an answer read at most
MAX_BACKOFF = 10.0


def endpoint(url: str) -> tuple[str, str | None]:
    """The URL a request is POSTed to (``url`` as given, with ``/`` when it has no path, and
    without a user and password), and the ``Authorization`` header that these make."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # one that is not a number raises ValueError
    except ValueError:
        valid = False
    if not valid:
        raise RequestError(f"{shown(url)!r} is not an http:// or https:// URL with a host")
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        secret = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        authorization = f"Basic {token}"
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urllib.parse.urlunsplit(parts._replace(path=parts.path or "/")), authorization


def shown(url: str) -> str:
    """``url`` fit to be printed: no user or password, and no query (it may hold a token)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(malformed URL)"
    query = "?..." if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query


def excerpt(body: bytes) -> str:
    """A short excerpt of an answer: its ``error`` field when it is KServe's error body."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"]
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


class RevisionClient:
    """POSTs batches of instances to one revision and returns each answer's parsed JSON."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url, self._authorization = endpoint(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.requests = 0  # attempts made, retries included

    @property
    def shown_url(self) -> str:
        return shown(self.url)

    def predict(self, instances: list[Any]) -> Any:
        """The answer to ``{"instances": instances}``; a :class:`RequestError` once the
        retries are spent or at an answer that is not to be retried."""
        body = json.dumps({"instances": instances}, ensure_ascii=False).encode("utf-8")
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._post(body)
            except _RetryableError as err:
                if attempt == attempts:
                    tries = f" after {attempts} attempts" if attempts > 1 else ""
                    raise RequestError(
                        f"POST {self.shown_url}: {err.reason}{tries}",
                        url=self.shown_url,
                        status=err.status,
                    ) from None
                self.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF))
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, body: bytes) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read(READ_LIMIT + 1)
        except urllib.error.HTTPError as err:
            detail = excerpt(err.read(EXCERPT * 8))
            reason = f"HTTP {err.code}" + (f": {detail}" if detail else "")
            if err.code >= 500:
                raise _RetryableError(reason, err.code) from None
            raise RequestError(
                f"POST {self.shown_url}: {reason}", url=self.shown_url, status=err.code
            ) from None
        except urllib.error.URLError as err:
            raise _RetryableError(f"no connection ({_describe(err.reason)})") from None
        except TimeoutError:
            raise _RetryableError(f"no answer within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as err:
            raise _RetryableError(f"connection failed ({_describe(err)})") from None
        if len(answer) > READ_LIMIT:
            raise RequestError(
                f"POST {self.shown_url}: the answer is over {READ_LIMIT} bytes",
                url=self.shown_url,
                status=status,
            )
        try:
            return json.loads(answer)
        except ValueError:
            raise RequestError(
                f"POST {self.shown_url}: HTTP {status}, not JSON: {excerpt(answer)!r}",
                url=self.shown_url,
                status=status,
            ) from None


class _RetryableError(Exception):
    """A failure worth another attempt: no connection, no answer in time, or a 5xx."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _describe(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
