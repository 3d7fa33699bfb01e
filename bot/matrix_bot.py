"""The Matrix front end: a thin matrix-nio adapter around the answering core.

``bron serve matrix`` calls :func:`run`. The bot logs in once and then reuses its stored device
(see :mod:`bot.matrix_session`), answers every message in a direct room and, in group rooms,
messages that mention it or start with a command. Replies are ``m.notice`` events (bots ignore
notices, so two bots never talk in circles) sent as replies to the question. Encrypted rooms work
the same; keys live in the data directory.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinResponse,
    LocalProtocolError,
    MatrixRoom,
    MegolmEvent,
    RoomKeyEvent,
    RoomMessageText,
    ErrorResponse,
    RoomSendResponse,
    SyncError,
    SyncResponse,
)

from bot.chat import parse_command, unknown_command
from bot.config import Config
from bot.core import Bron, CoreFeeds
from bot.follow import FollowRunner, Outgoing, SendError
from bot.render_follow import render_briefing, render_push
from bot.matrix_backup import start_backup
from bot.matrix_crosssign import cross_sign
from bot.matrix_messages import HTML_FORMAT, Incoming, is_edit, notice, pair_parts, read_message
from bot.matrix_plain import PlainOnly
from bot.matrix_replies import _NEWLINE, MATRIX_LIMIT, Pair, Replier
from bot.metrics import CountingFeeds
from bot.ops import Ops
from bot.matrix_session import MatrixStartupError, StoredSession, load_session, login, save_session, store_path
from bot.matrix_session import check_config as check_login_config
from embeddings.feeds import poll_every

log = logging.getLogger(__name__)

POLL_MS = 30_000
# The first sync only brings the bot up to date: full room state (after a restart the client knows
# no members, so every room would look like a direct chat), one timeline event per room, never answered.
FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}}
# After a restart the first sync also brings what arrived meanwhile, so that recent questions can be
# answered (matrix.catch_up_minutes); a busier room than this is caught up on its latest messages.
CATCH_UP_FILTER = {"room": {"timeline": {"limit": 50}}}
SEND_ATTEMPTS = 6


class Backoff:
    """Exponential wait between retries: ``first``, doubled after each failure, at most ``most``."""

    def __init__(self, first: float = 0.5, most: float = 60.0) -> None:
        self.first, self.most = first, most
        self.delay = first
        self.failures = 0

    async def wait(self) -> None:
        """Sleep for the current delay and double it for next time."""
        self.failures += 1
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most)

    def reset(self) -> None:
        """Back to the first delay after a success."""
        self.delay, self.failures = self.first, 0


class MatrixBot:
    """One Matrix account answering questions with one :class:`Bron`."""

    def __init__(
        self,
        config: Config,
        bron: Bron,
        data_dir: Path,
        *,
        backoff: tuple[float, float] = (0.5, 60.0),
        key_wait: float = 20.0,
        poll_ms: int = POLL_MS,
        clock_margin: float = 60.0,
        ops: Ops | None = None,
    ) -> None:
        """``backoff`` is the (first, longest) wait between reconnects; ``key_wait`` how long a missing
        room key may take to arrive; ``clock_margin`` how far the homeserver's clock may lag ours;
        ``ops`` the metrics, readiness and answers in flight shared with the ops endpoints."""
        self.config = config.matrix
        self.data_dir = Path(data_dir)
        self.ops = ops or Ops()
        self.metrics = self.ops.metrics
        self.replier = Replier(bron, self.config.command_prefix, self.config.articles_per_page, metrics=self.metrics)
        self.bron = bron
        self.alerts: FollowRunner | None = None
        self._alerts_stop = asyncio.Event()
        self.backoff = backoff
        self.key_wait = key_wait
        self.poll_ms = poll_ms
        self.encryption = self.config.encryption
        store = store_path(self.data_dir)
        # Keys and the access token live here: owner only.
        store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        store.mkdir(exist_ok=True, mode=0o700)
        self.client = AsyncClient(
            self.config.homeserver,
            self.config.user_id,
            store_path=str(store),
            config=AsyncClientConfig(
                # Failures surface at once; the sync loop below retries with its own backoff.
                max_timeouts=0,
                encryption_enabled=self.encryption,
                # nio keeps the sync token next to the keys too; session.json is the copy we read,
                # as it also exists without encryption.
                store_sync_tokens=self.encryption,
            ),
        )
        self.session: StoredSession | None = None
        self.plain_only = PlainOnly(self.client, self.encryption)  # issue 15: encryption false
        self.live = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._room_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._crypto_lock = asyncio.Lock()
        self._invites_seen: set[str] = set()
        self._undecryptable: dict[str, list[tuple[MatrixRoom, MegolmEvent]]] = defaultdict(list)
        self._told_unreadable: set[str] = set()
        self._stopping = False
        # A room the bot joins shows it some history: messages from before the bot started are not
        # for it. Timestamps are the homeserver's, hence the margin for a clock a little behind ours.
        self._answer_after_ms = int((time.time() - clock_margin) * 1000)
        self.catch_up_ms = int(self.config.catch_up_minutes * 60_000)
        self.client.add_event_callback(self._on_text, RoomMessageText)
        self.client.add_event_callback(self._on_undecryptable, MegolmEvent)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
        self.metrics.key_requests.set_function(lambda: sum(len(waiting) for waiting in self._undecryptable.values()))

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in (or reuse the stored device), retrying while the homeserver is unreachable."""
        backoff = Backoff(*self.backoff)
        while True:
            self.ops.readiness.waiting(f"logging in to {self.config.homeserver}")
            try:
                self.session = await login(self.client, self.config, self.data_dir, self.encryption)
                await cross_sign(self.client, self.config, self.data_dir, self.session)  # issue 15
                self.key_backup = await start_backup(self.client, self.data_dir, self.session)  # issue 15
                return
            except MatrixStartupError:
                raise
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                self._api_error(exc)
                self.ops.readiness.waiting(f"homeserver {self.config.homeserver} unreachable ({exc}); retrying")
                log.warning("matrix: homeserver %s unreachable at login (%s); retrying in %.1fs",
                            self.config.homeserver, exc, backoff.delay)
                await backoff.wait()

    async def run_forever(self) -> None:
        """Sync until :meth:`close`; reconnects with exponential backoff when the homeserver goes away."""
        assert self.session is not None, "call start() first"
        backoff = Backoff(*self.backoff)
        self.ops.readiness.waiting("first sync with the homeserver")
        resuming = bool(self.session.next_batch) and self.catch_up_ms > 0
        while not self._stopping:
            first = not self.live.is_set()
            try:
                response = await self.client.sync(
                    timeout=0 if first else self.poll_ms,
                    since=self.session.next_batch or None,
                    sync_filter=(CATCH_UP_FILTER if resuming else FIRST_SYNC_FILTER) if first else None,
                    full_state=first,
                )
                if isinstance(response, SyncError):
                    self._raise_if_fatal(response)
                    raise ConnectionError(f"sync error {response.status_code}: {response.message}")
                if first and resuming:
                    self._catch_up(response)
                await self._after_sync(response)
            except (asyncio.CancelledError, MatrixStartupError):
                raise
            except Exception as exc:  # network, server and decoding errors: keep going
                self._api_error(exc)
                self.metrics.api_retries.labels("matrix").inc()
                log.warning("matrix: sync failed (%s); retry %d in %.1fs", exc or type(exc).__name__,
                            backoff.failures + 1, backoff.delay)
                await backoff.wait()
                continue
            if backoff.failures:
                log.warning("matrix: sync works again after %d failed attempts", backoff.failures)
            backoff.reset()
            if first:
                self.live.set()
                self.ops.readiness.ready()
                log.info("matrix: up to date, answering from now on")
                # Topic alerts and briefings go out once the bot knows its rooms.
                self.alerts = FollowRunner(self.bron.follow, "matrix", self.send_outgoing)
                self._spawn(self.alerts.run(self._alerts_stop))

    async def close(self) -> None:
        """Stop syncing, finish nothing more, keep the sync token, and close the HTTP session."""
        self._stopping = True
        self._alerts_stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            save_session(self.data_dir, self.session)
        await self.client.close()

    def _api_error(self, problem: object) -> None:
        """Count a failed homeserver call by kind: rate_limited, timeout, server, network or client."""
        if isinstance(problem, asyncio.TimeoutError):
            kind = "timeout"
        elif isinstance(problem, (OSError, aiohttp.ClientError)):
            kind = "network"
        elif isinstance(problem, ErrorResponse):
            code = str(problem.status_code or "")
            kind = "rate_limited" if code in ("M_LIMIT_EXCEEDED", "429") else "server" if code.startswith("5") else "client"
        else:
            kind = "server"  # e.g. a sync error turned into ConnectionError, or a body nio could not parse
        self.metrics.api_errors.labels("matrix", kind).inc()

    def _catch_up(self, response: SyncResponse) -> None:
        """Answer the questions that arrived while the bot was down or starting, if recent enough.

        Only rooms the bot was already in count (history seen on joining a room never does), and a
        message the bot already replied to (the reply is in the same stretch of timeline) is skipped.
        """
        oldest = int(time.time() * 1000) - self.catch_up_ms
        me = self.client.user_id
        waiting = 0
        for room_id, info in response.rooms.join.items():
            room = self.client.rooms.get(room_id)
            events = info.timeline.events
            replied = {_reply_target(e) for e in events if getattr(e, "sender", None) == me}
            for event in events:
                if not isinstance(event, RoomMessageText) or event.sender == me or event.event_id in replied:
                    continue
                content = (event.source or {}).get("content") or {}
                if room is None or event.server_timestamp < oldest or is_edit(content):
                    continue
                if self.allowed(event.sender, room_id):
                    waiting += 1
                    self._spawn(self._answer(room, event, content))
        if waiting:
            log.info("matrix: %d message(s) arrived while the bot was away; answering those for it", waiting)

    def _raise_if_fatal(self, response: SyncError) -> None:
        if response.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise MatrixStartupError(
                f"the homeserver no longer accepts the bot's access token ({response.message}): the device was "
                f"logged out. Delete {self.data_dir / 'matrix'} and start again to log in as a new device."
            )

    async def _after_sync(self, response: SyncResponse) -> None:
        """Remember the sync token and do the key bookkeeping encryption needs between syncs."""
        self.session.next_batch = response.next_batch
        save_session(self.data_dir, self.session)
        await self.plain_only.after_sync()  # issue 15: leave encrypted rooms when encryption is off
        if self.client.olm is None:
            return
        async with self._crypto_lock:
            await self.client.send_to_device_messages()
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())

    def _spawn(self, coro) -> None:
        """Run ``coro`` beside the sync loop; keep a reference so it is not collected mid-way."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("matrix: handling an event failed", exc_info=task.exception())

    # -- who may use the bot -------------------------------------------------------------------

    def allowed(self, user_id: str, room_id: str) -> bool:
        """Empty allowlists let everyone in; otherwise the user or the room must be listed."""
        users, rooms = self.config.allowed_users, self.config.allowed_rooms
        return (not users and not rooms) or user_id in users or room_id in rooms

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if room.room_id in self._invites_seen:
            return
        self._invites_seen.add(room.room_id)
        if self.allowed(event.sender, room.room_id):
            log.info("matrix: joining %s, invited by %s", room.room_id, event.sender)
            self._spawn(self._join(room.room_id))
        else:
            log.info("matrix: refusing the invite to %s from %s (not on the allowlist)", room.room_id, event.sender)
            self._spawn(self.client.room_leave(room.room_id))

    async def _join(self, room_id: str) -> None:
        try:
            response = await self.client.join(room_id)
        except Exception as exc:
            response = exc
        if not isinstance(response, JoinResponse):
            # The invite stays pending on the server and comes again with a later sync: retry then.
            log.warning("matrix: joining %s failed (%s); will retry", room_id, response)
            self._invites_seen.discard(room_id)

    # -- messages ------------------------------------------------------------------------------

    def _is_new(self, event) -> bool:
        """Sent while the bot runs: not from the first sync, not history shown on joining a room."""
        return self.live.is_set() and event.server_timestamp >= self._answer_after_ms

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if not self._is_new(event) or event.sender == self.client.user_id:
            return
        content = (event.source or {}).get("content") or {}
        if is_edit(content) or not self.allowed(event.sender, room.room_id):
            return
        self._spawn(self._answer(room, event, content))

    def _read(self, room: MatrixRoom, content: dict) -> Incoming:
        me = self.client.user_id
        member = room.users.get(me)
        return read_message(content, me, member.display_name if member else None)

    async def _answer(self, room: MatrixRoom, event: RoomMessageText, content: dict) -> None:
        """Answer one message if it is for the bot; one room's messages are answered in order.

        It counts as in flight from arrival, so a stop lets it (and those queued before it) finish.
        """
        async with self.ops.inflight.track(), self._room_locks[room.room_id]:
            started = time.perf_counter()
            incoming = self._read(room, content)
            command, arg = parse_command(incoming.text, self.config.command_prefix)
            direct = room.member_count <= 2
            if command is None and not (direct or incoming.mentioned):
                return  # chatter, or another bot's command
            unknown = unknown_command(incoming.text, self.config.command_prefix)
            if unknown:
                text = self.replier.text(room.room_id, "unknown_command", cmd=unknown, p=self.config.command_prefix)
                await self._send_parts(room, event.event_id, event.sender, [text])
                return
            log.info("matrix: %s in %s", command or "question", room.room_id)
            if command == "add" and event.sender not in self.config.admin_users:
                parts, reply = [self.replier.text(room.room_id, "admin_only")], None
            else:
                reply = await self.replier.reply(room.room_id, command, arg)
                parts = reply.parts
            sent = await self._send_parts(room, event.event_id, event.sender, parts)
            if reply is not None and reply.outcome is not None:
                outcome = reply.outcome if sent else "error"
                chars = sum(len(text) for text, _ in parts) if sent else 0
                self.metrics.question("matrix", reply.language, outcome, time.perf_counter() - started, chars)

    async def _send_parts(self, room: MatrixRoom, reply_to: str, asker: str, parts: list[Pair]) -> bool:
        """Send the parts in order; False if one could not be delivered."""
        for html_body, text_body in parts:
            if await self.send(room, notice(html_body, text_body, reply_to, asker)) is None:
                return False
        return True

    async def send_outgoing(self, item: Outgoing) -> str | None:
        """Render and send one topic alert or briefing from the outbox (see :mod:`bot.follow.runner`).

        The transaction id is the outbox row's, so a message sent again after a crash is dropped by
        the homeserver as a repeat: exactly once.
        """
        room = self.client.rooms.get(item.address)
        if room is None:
            raise SendError("the bot is not in this room any more", retry=False, gone=True)
        if self.plain_only.blocks(room):
            raise SendError("an encrypted room, and encryption is off", retry=False)
        prefix, lang = self.config.command_prefix, item.language
        if item.kind == "push":
            cmd = f"{prefix}summary {item.payload.article.id}"
            parts = [(_NEWLINE.sub("<br>\n", render_push(item.payload, lang, "html", MATRIX_LIMIT, cmd)),
                      render_push(item.payload, lang, "text", MATRIX_LIMIT, cmd))]
        else:
            html_parts = [_NEWLINE.sub("<br>\n", p) for p in render_briefing(item.payload, lang, "html", MATRIX_LIMIT, prefix)]
            parts = pair_parts(html_parts, render_briefing(item.payload, lang, "text", MATRIX_LIMIT, prefix))
        event_id = None
        for i, (html_body, text_body) in enumerate(parts):
            content = {"msgtype": "m.notice", "body": text_body, "format": HTML_FORMAT, "formatted_body": html_body}
            event_id = await self.send(room, content, tx_id=f"{item.key}-{i}")
            if event_id is None:
                self.metrics.follow_messages.labels("matrix", item.kind, "failed").inc()
                raise SendError("the homeserver did not take it", retry=True)
        self.metrics.follow_messages.labels("matrix", item.kind, "sent").inc()
        return event_id

    async def send(self, room: MatrixRoom, content: dict, tx_id: str | None = None) -> str | None:
        """Send one event, encrypted in encrypted rooms, retrying while the homeserver is away.

        The transaction id (``tx_id``, else a new one) stays the same across retries, so the
        homeserver drops duplicates.
        """
        if self.plain_only.blocks(room):  # issue 15: never plaintext into an encrypted room
            return None
        tx_id = tx_id or str(uuid.uuid4())
        backoff = Backoff(*self.backoff)
        for attempt in range(SEND_ATTEMPTS):
            try:
                async with self._crypto_lock:
                    await self._prepare_encryption(room)
                    response = await self.client.room_send(
                        room.room_id, "m.room.message", content, tx_id=tx_id,
                        ignore_unverified_devices=self.config.trust == "tofu",
                    )
                if isinstance(response, RoomSendResponse):
                    return response.event_id
                self._api_error(response)
                log.warning("matrix: sending to %s failed: %s", room.room_id, response)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._api_error(exc)
                log.warning("matrix: sending to %s failed (%s), attempt %d", room.room_id, exc, attempt + 1)
            if attempt < SEND_ATTEMPTS - 1:
                self.metrics.api_retries.labels("matrix").inc()
            await backoff.wait()
        log.error("matrix: gave up sending a reply to %s", room.room_id)
        return None

    async def _prepare_encryption(self, room: MatrixRoom) -> None:
        """Know every member's devices before sharing a room key, and apply the trust setting."""
        if self.client.olm is None or not room.encrypted:
            return
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.config.trust == "allowlist":
            self._trust_allowlist(room)

    def _trust_allowlist(self, room: MatrixRoom) -> None:
        """Verify the devices of allowed users (and our own), blacklist every other device in the room.

        Blacklisted devices get no room key, so they cannot read the bot's replies.
        """
        trusted = set(self.config.allowed_users) | {self.client.user_id}
        for user_id in room.users:
            for device in self.client.device_store.active_user_devices(user_id):
                if user_id in trusted:
                    if device.blacklisted:
                        self.client.unblacklist_device(device)
                    if not device.verified:
                        self.client.verify_device(device)
                elif not device.blacklisted:
                    self.client.blacklist_device(device)

    # -- messages the bot cannot decrypt -------------------------------------------------------

    async def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        """Ask for the missing room key; say once per room if it never comes."""
        if not self._is_new(event) or event.sender == self.client.user_id:
            return
        if not self.allowed(event.sender, room.room_id):
            return
        log.info("matrix: cannot decrypt %s in %s yet, requesting the key", event.event_id, room.room_id)
        self._undecryptable[event.session_id].append((room, event))
        if self.client.olm is not None:
            self._spawn(self._request_key(event))
        self._spawn(self._give_up_later(event.session_id))

    async def _request_key(self, event: MegolmEvent) -> None:
        """Ask our own other devices (nio's default) and the sender's device for the room key."""
        try:
            await self.client.request_room_key(event)
        except LocalProtocolError:
            return  # already requested for this session
        if event.device_id:
            request = event.as_key_request(event.sender, self.client.device_id, device_id=event.device_id)
            await self.client.to_device(request)

    async def _on_room_key(self, event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
        """A key arrived: answer the messages that were waiting for it."""
        for room, megolm in self._undecryptable.pop(event.session_id, []):
            self._retry_decrypt(room, megolm)

    def _retry_decrypt(self, room: MatrixRoom, megolm: MegolmEvent) -> bool:
        if self.client.olm is None:
            return False
        try:
            event = self.client.decrypt_event(megolm)
        except EncryptionError:
            return False
        if isinstance(event, RoomMessageText):
            self._spawn(self._on_text(room, event))
        return True

    async def _give_up_later(self, session_id: str) -> None:
        await asyncio.sleep(self.key_wait)
        for room, megolm in self._undecryptable.pop(session_id, []):
            if self._retry_decrypt(room, megolm) or room.room_id in self._told_unreadable:
                continue
            self._told_unreadable.add(room.room_id)
            log.warning("matrix: no key for %s in %s; telling the room", megolm.event_id, room.room_id)
            html_body, text_body = self.replier.text(room.room_id, "matrix_undecryptable")
            await self.send(room, notice(html_body, text_body, megolm.event_id, megolm.sender))


def _reply_target(event) -> str | None:
    relates = ((getattr(event, "source", None) or {}).get("content") or {}).get("m.relates_to") or {}
    return (relates.get("m.in_reply_to") or {}).get("event_id")


async def _poll_feeds(config: Config, bron: Bron, ops: Ops, stop: asyncio.Event) -> None:
    """Keep the configured and added feeds fresh while the bot runs."""
    if config.feeds.poll_minutes > 0 and await asyncio.to_thread(bron.feeds):
        await poll_every(CountingFeeds(CoreFeeds(bron), ops.metrics), config.feeds.poll_minutes, stop)


async def serve(config: Config, bron: Bron, data_dir: Path, ops: Ops | None = None) -> None:
    """Run the bot until SIGINT or SIGTERM; then stop syncing and let answers in flight finish."""
    ops = ops or Ops()
    bot = MatrixBot(config, bron, data_dir, ops=ops)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    try:
        starting = asyncio.create_task(bot.start())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            return
        starting.result()
        syncing = asyncio.create_task(bot.run_forever())
        polling = asyncio.create_task(_poll_feeds(config, bron, ops, stop))
        done, _ = await asyncio.wait({syncing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        ops.readiness.waiting("stopping")
        log.info("matrix: stopping; no new messages are taken")
        for task in (syncing, polling):
            task.cancel()
        await asyncio.gather(syncing, polling, return_exceptions=True)
        await ops.inflight.drain(ops.drain_seconds)
        if syncing in done:
            syncing.result()  # a fatal error (e.g. a revoked token) ends the bot with its message
    finally:
        stopping.cancel()
        await bot.close()


def check_config(config: Config, data_dir: Path) -> None:
    """Stop start-up early, before the index loads, on a bad matrix.* value or a missing login."""
    check_login_config(config.matrix, load_session(data_dir))


def run(config: Config, bron: Bron, data_dir: Path, ops: Ops | None = None) -> None:
    """Entry point of ``bron serve matrix``."""
    asyncio.run(serve(config, bron, data_dir, ops))
