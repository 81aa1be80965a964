"""A scripted browser for the demo and tests: follows redirects one hop at a time, keeps cookies
like a real browser on localhost (Secure cookies are sent to http://127.0.0.1, as browsers treat
loopback as a secure context), and can submit the emulator's consent form."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    buttons: dict[str, tuple[str, str]]  # id -> (name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").upper(), {}, {}))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons[a.get("id") or a.get("value", "")] = (a["name"], a.get("value", ""))


def forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class Browser:
    def __init__(self, timeout: float = 15.0) -> None:
        self.session = requests.Session()
        self.timeout = timeout
        self.history: list[requests.Response] = []

    def get(self, url: str, **kwargs) -> requests.Response:
        response = self.session.get(url, allow_redirects=False, timeout=self.timeout, **kwargs)
        return self._received(response)

    def post(self, url: str, data: dict, **kwargs) -> requests.Response:
        response = self.session.post(url, data=data, allow_redirects=False, timeout=self.timeout, **kwargs)
        return self._received(response)

    def _received(self, response: requests.Response) -> requests.Response:
        # Browsers send Secure cookies to http://127.0.0.1 (loopback is a secure context);
        # Python's cookie jar does not, so loopback cookies are relaxed once stored.
        for cookie in self.session.cookies:
            if cookie.domain in LOOPBACK or cookie.domain.removesuffix(".local") in LOOPBACK:
                cookie.secure = False
        self.history.append(response)
        return response

    def follow(self, response: requests.Response, max_hops: int = 10) -> requests.Response:
        """Follow redirects as a browser does (303 and 302 after POST become GET)."""
        for _ in range(max_hops):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            response = self.get(urljoin(response.url, response.headers["Location"]))
        raise RuntimeError("too many redirects")

    def open(self, url: str) -> requests.Response:
        return self.follow(self.get(url))

    def click(self, page: requests.Response, button_id: str) -> requests.Response:
        """Submit the form on ``page`` that holds the button ``button_id``; don't follow."""
        for form in forms(page.text):
            if button_id in form.buttons:
                name, value = form.buttons[button_id]
                return self.post(urljoin(page.url, form.action), {**form.fields, name: value})
        raise LookupError(f"no button {button_id!r} on the page")
