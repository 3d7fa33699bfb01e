"""A Matrix user driven by a real matrix-nio client, for the tests and the round-trip benchmark."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomSendResponse,
)

from .homeserver import Synapse, User

WAIT = 90.0  # seconds; generous, as the box is shared with another test run
ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


class Person:
    """A Matrix user with a real nio client (encryption on), syncing in the background."""

    def __init__(self, synapse: Synapse, account: User, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.user_id = account.user_id
        self.client = AsyncClient(
            synapse.url, account.user_id, store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.notices: list[RoomMessageNotice] = []
        self.undecryptable: list[MegolmEvent] = []
        self.joined: set[tuple[str, str]] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Log in as a new device and keep syncing."""
        reply = await self.client.login(self.account.password, device_name="test")
        assert isinstance(reply, LoginResponse), reply
        self.client.add_event_callback(self._on_notice, RoomMessageNotice)
        self.client.add_event_callback(self._on_megolm, MegolmEvent)
        self.client.add_event_callback(self._on_member, RoomMemberEvent)
        await self.client.sync(timeout=0)
        await self._keys()
        self._task = asyncio.create_task(self.client.sync_forever(timeout=10_000))

    async def _keys(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()

    async def stop(self) -> None:
        if self._task:
            await cancel(self._task)
        await self.client.close()

    async def _on_notice(self, room, event: RoomMessageNotice) -> None:
        event.room_id = room.room_id
        self.notices.append(event)
        self._changed.set()

    async def _on_megolm(self, room, event: MegolmEvent) -> None:
        self.undecryptable.append(event)
        self._changed.set()

    async def _on_member(self, room, event: RoomMemberEvent) -> None:
        if event.membership in ("join", "leave"):
            self.joined.add((room.room_id, f"{event.state_key}:{event.membership}"))
            self._changed.set()

    async def until(self, predicate, timeout: float = WAIT):
        """Wait until ``predicate()`` returns something truthy (checked whenever an event arrives)."""
        async def poll():
            while not (found := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return found

        return await asyncio.wait_for(poll(), timeout)

    async def room(self, invite: list[str], encrypted: bool, direct: bool, wait_for: str) -> str:
        """Create a room, invite people, and wait until ``wait_for`` (the bot) has joined."""
        reply = await self.client.room_create(
            is_direct=direct,
            invite=invite,
            name=None if direct else "Bron test group",
            initial_state=[ENCRYPTION_STATE] if encrypted else [],
        )
        assert isinstance(reply, RoomCreateResponse), reply
        await self.until(lambda: (reply.room_id, f"{wait_for}:join") in self.joined)
        return reply.room_id

    async def say(self, room_id: str, body: str, formatted: str | None = None, **extra: object) -> str:
        """Send an m.text message; returns its event id."""
        content: dict = {"msgtype": "m.text", "body": body, **extra}
        if formatted:
            content.update(format="org.matrix.custom.html", formatted_body=formatted)
        reply = await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert isinstance(reply, RoomSendResponse), reply
        return reply.event_id

    def replies_to(self, event_id: str) -> list[RoomMessageNotice]:
        """The notices received so far that reply to ``event_id``."""
        return [n for n in self.notices if reply_target(n) == event_id]

    async def reply(self, event_id: str, timeout: float = WAIT) -> RoomMessageNotice:
        """The first notice that replies to ``event_id``."""
        return (await self.until(lambda: self.replies_to(event_id), timeout))[0]

    async def ask(self, room_id: str, body: str, **kwargs: object) -> RoomMessageNotice:
        """Say something and wait for the bot's reply to it."""
        return await self.reply(await self.say(room_id, body, **kwargs))


async def cancel(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait for it to end. After the session loop sat idle (while other test files
    ran), aiohttp's expired timeouts can turn a cancellation into a TimeoutError that nio's retry loop
    swallows: cancel again until the task is really done."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


def reply_target(event) -> str | None:
    """The event id an event replies to, if any."""
    relates = event.source.get("content", {}).get("m.relates_to") or {}
    return (relates.get("m.in_reply_to") or {}).get("event_id")
