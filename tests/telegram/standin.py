"""A stand-in for the Telegram Bot API on 127.0.0.1, spoken to by python-telegram-bot's real HTTP stack.

It behaves like api.telegram.org where the bot can notice: long-polled ``getUpdates`` with offsets,
``{"ok": false, ...}`` errors with Telegram's status codes (400 for bad HTML or a message over 4096
characters, 401 for a wrong token, 404 for an unknown method, 429 with ``retry_after``), HTML parse
mode checked against the tags Telegram accepts. Tests play the users: they push updates and read what
the bot sent. Faults (5xx, slowness, a dropped connection) can be armed per method.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token-for-the-stand-in"
BOT = {"id": 123456, "is_bot": True, "first_name": "Bron", "username": "bron_test_bot",
       "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
MAX_TEXT = 4096
# Tags (and their allowed attributes) that Telegram's HTML parse mode accepts.
ALLOWED_TAGS = {
    "b": set(), "strong": set(), "i": set(), "em": set(), "u": set(), "ins": set(), "s": set(),
    "strike": set(), "del": set(), "code": {"class"}, "pre": set(), "a": {"href"},
    "blockquote": {"expandable"}, "tg-spoiler": set(), "span": {"class"}, "tg-emoji": {"emoji-id"},
}


class EntityError(ValueError):
    """What Telegram answers as "Bad Request: can't parse entities"."""


class _TelegramHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f"Unsupported start tag \"{tag}\"")
        for name, _ in attrs:
            if name not in ALLOWED_TAGS[tag]:
                raise EntityError(f"Unsupported attribute \"{name}\" in tag \"{tag}\"")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f"Can't find end tag corresponding to start tag \"{tag}\"")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> str:
    """The plain text Telegram shows for ``markup``; raises EntityError where Telegram would."""
    if re.search(r"&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)", markup):
        raise EntityError("Unsupported entity: an unescaped '&'")
    if re.search(r"<(?![a-zA-Z/])", markup):
        raise EntityError("Unsupported start tag: an unescaped '<'")
    parser = _TelegramHtml()
    parser.feed(markup)
    parser.close()
    if parser.stack:
        raise EntityError(f"Can't find end tag corresponding to start tag \"{parser.stack[-1]}\"")
    return "".join(parser.text)


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    """An error answer: HTTP status plus Telegram's JSON body."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class Sent:
    """A message the bot sent or edited, as the user sees it."""

    method: str
    chat_id: int
    message_id: int
    html: str
    text: str
    reply_to: int | None
    buttons: list[list[dict[str, Any]]] = field(default_factory=list)

    def button_data(self) -> list[str]:
        """The callback data of every inline button, row by row."""
        return [b.get("callback_data", "") for row in self.buttons for b in row]


@dataclass
class Fault:
    """An armed fault: the next ``times`` calls of ``method`` misbehave as ``kind`` says."""

    method: str
    kind: str  # "status", "slow" or "drop"
    times: int = 1
    status: int = 500
    seconds: float = 0.0
    parameters: dict[str, Any] | None = None


class BotApiStandIn:
    """The Bot API as the bot sees it, plus the levers a test pulls as a user would."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.sent: list[Sent] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.files: dict[str, bytes] = {}
        self.webhook: dict[str, Any] = {}
        self.faults: list[Fault] = []
        self._ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda p: BOT,
            "deleteWebhook": lambda p: True,
            "setWebhook": self._set_webhook,
            "setMyCommands": self._set_my_commands,
            "sendChatAction": lambda p: True,
            "answerCallbackQuery": lambda p: True,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "getFile": self._get_file,
            "close": lambda p: True,
            "logOut": lambda p: True,
        }

    # -- server ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            form = await request.post()
        except ConnectionResetError:  # the bot gave up on this call (shutdown, timeout)
            return web.Response(status=499)
        params = {k: _decode(v) for k, v in form.items() if isinstance(v, str)}
        self.calls.append((method, params))
        fault = self._take_fault(method)
        if fault and fault.kind == "drop":
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if fault and fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
        try:
            if fault and fault.kind == "status":
                raise ApiError(fault.status, _DESCRIPTIONS.get(fault.status, "Internal Server Error"), fault.parameters)
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if method == "getUpdates":
                result = await self._get_updates(params)
            elif method in self._methods:
                result = self._methods[method](params)
            else:
                raise ApiError(404, "Not Found")
        except ApiError as err:
            body: dict[str, Any] = {"ok": False, "error_code": err.status, "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.status)
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token or request.match_info["path"] not in self.files:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=self.files[request.match_info["path"]])

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    # -- methods ------------------------------------------------------------------------------

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        async with self._changed:
            while True:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                if self.updates or time.monotonic() >= deadline:
                    return self.updates[: int(params.get("limit") or 100)]
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    pass

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        if not str(params.get("url", "")).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = params
        return True

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands[params.get("language_code") or ""] = params["commands"]
        return True

    def _checked_text(self, params: dict[str, Any]) -> tuple[str, str]:
        markup = str(params.get("text") or "")
        if not markup.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if params.get("parse_mode") == "HTML":
            try:
                text = parse_html(markup)
            except EntityError as err:
                raise ApiError(400, f"Bad Request: can't parse entities: {err}") from None
        else:
            text = markup
        if utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return markup, text

    def _record(self, method: str, params: dict[str, Any], message_id: int) -> dict[str, Any]:
        markup, text = self._checked_text(params)
        reply = (params.get("reply_parameters") or {}).get("message_id")
        buttons = (params.get("reply_markup") or {}).get("inline_keyboard", [])
        chat_id = int(params["chat_id"])
        self.sent.append(Sent(method, chat_id, message_id, markup, text, reply, buttons))
        asyncio.get_running_loop().create_task(self._notify())
        message = {"message_id": message_id, "date": int(time.time()), "chat": _chat(chat_id),
                   "from": BOT, "text": text}
        if buttons:
            message["reply_markup"] = {"inline_keyboard": buttons}
        return message

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._record("sendMessage", params, next(self._ids))

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._record("editMessageText", params, int(params["message_id"]))

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.files[file_id]),
                "file_path": file_id}

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- the user's side ----------------------------------------------------------------------

    def _push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), kind: payload}
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return payload

    def send_text(self, user: dict[str, Any], text: str, chat: dict[str, Any] | None = None,
                  reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """A user types ``text`` (private chat unless ``chat`` is a group); entities as Telegram makes them."""
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat or private(user),
                   "from": user, "text": text}
        entities = _entities(text)
        if entities:
            message["entities"] = entities
        if reply_to:
            message["reply_to_message"] = reply_to
        return self._push("message", message)

    def send_document(self, user: dict[str, Any], name: str, content: bytes, mime: str = "text/plain") -> dict[str, Any]:
        """A user sends a file in a private chat."""
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = content
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": private(user), "from": user,
                   "document": {"file_id": file_id, "file_unique_id": file_id, "file_name": name,
                                "mime_type": mime, "file_size": len(content)}}
        return self._push("message", message)

    def press(self, user: dict[str, Any], sent: Sent, data: str) -> None:
        """A user presses the inline button with callback ``data`` under ``sent``."""
        assert data in sent.button_data(), f"no button {data!r} under that message: {sent.button_data()}"
        message = {"message_id": sent.message_id, "date": int(time.time()), "chat": _chat(sent.chat_id),
                   "from": BOT, "text": sent.text}
        self._push("callback_query", {"id": str(next(self._ids)), "from": user, "message": message,
                                      "chat_instance": "ci", "data": data})

    def as_message(self, sent: Sent) -> dict[str, Any]:
        """A bot message as it appears inside a user's reply to it."""
        return {"message_id": sent.message_id, "date": int(time.time()), "chat": _chat(sent.chat_id),
                "from": BOT, "text": sent.text}

    async def wait_sent(self, chat_id: int, count: int = 1, timeout: float = 30.0,
                        after: int = 0) -> list[Sent]:
        """The bot's messages to ``chat_id`` (beyond the first ``after``), once there are ``count``."""
        async def enough() -> list[Sent]:
            async with self._changed:
                while len(mine := [s for s in self.sent if s.chat_id == chat_id][after:]) < count:
                    await self._changed.wait()
                return mine

        try:
            return await asyncio.wait_for(enough(), timeout)
        except asyncio.TimeoutError:
            got = [s.text[:80] for s in self.sent if s.chat_id == chat_id]
            raise AssertionError(f"expected {count} message(s) to chat {chat_id} after {after}, got {got}") from None

    async def wait_until(self, chat_id: int, done: Callable[[list[Sent]], bool], timeout: float = 30.0) -> list[Sent]:
        """The bot's messages to ``chat_id`` once ``done`` says they are complete."""
        async def complete() -> list[Sent]:
            async with self._changed:
                while not done(mine := self.sent_to(chat_id)):
                    await self._changed.wait()
                return mine

        try:
            return await asyncio.wait_for(complete(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"chat {chat_id} never got the expected messages: {self.sent_to(chat_id)}") from None

    def sent_to(self, chat_id: int) -> list[Sent]:
        """Everything the bot has sent to ``chat_id`` so far."""
        return [s for s in self.sent if s.chat_id == chat_id]


_DESCRIPTIONS = {500: "Internal Server Error", 502: "Bad Gateway", 429: "Too Many Requests: retry after 1"}


def _decode(value: str) -> Any:
    # PTB sends scalars as plain strings and objects (reply_markup, commands) as JSON.
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": None if chat_id > 0 else "Groep"}


def private(user: dict[str, Any]) -> dict[str, Any]:
    """The private chat between ``user`` and the bot."""
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


def group(chat_id: int = -100123) -> dict[str, Any]:
    """A supergroup the bot is in."""
    return {"id": chat_id, "type": "supergroup", "title": "Nieuwsgroep"}


def user(user_id: int, language_code: str = "nl", name: str = "Anna") -> dict[str, Any]:
    """A human Telegram user."""
    return {"id": user_id, "is_bot": False, "first_name": name, "language_code": language_code}


ANNA = user(111, "nl", "Anna")
BOB = user(222, "en", "Bob")
ADMIN = user(999, "nl", "Beheerder")


def _entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram attaches: a command at the start, @mentions anywhere (UTF-16 offsets)."""
    found = []
    for match in re.finditer(r"(?:^/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?)|(?:@[A-Za-z0-9_]{5,})", text):
        kind = "bot_command" if match.group().startswith("/") else "mention"
        offset = utf16_len(text[: match.start()])
        found.append({"type": kind, "offset": offset, "length": utf16_len(match.group())})
    return found


def unescape(markup: str) -> str:
    """Plain text of bot HTML, for assertions."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))
