"""``matrix.encryption: false``: the bot stays out of encrypted rooms and never sends into one.

Without encryption the bot cannot read an encrypted room, and matrix-nio would send its replies
there in plaintext, which members would take for a private conversation. So after every sync the
bot leaves each joined room that is (or has just become) encrypted, and :meth:`PlainOnly.blocks`
stops any send into such a room in the meantime. matrix-nio drops the encryption state that comes
with an invite, so an encrypted room is only known after joining it: the bot joins, sees, leaves.
No notice is sent before leaving: by then the room is encrypted and a plaintext notice would be the
very thing this module prevents.
"""

from __future__ import annotations

import logging

from nio import AsyncClient, MatrixRoom, RoomLeaveResponse

log = logging.getLogger(__name__)


class PlainOnly:
    """Keeps an unencrypted bot out of encrypted rooms; does nothing when encryption is on."""

    def __init__(self, client: AsyncClient, encryption: bool) -> None:
        self.client = client
        self.active = not encryption
        self._left: set[str] = set()

    def blocks(self, room: MatrixRoom) -> bool:
        """True if sending into ``room`` would put plaintext into an encrypted room."""
        if self.active and room.encrypted:
            log.warning("matrix: not sending into %s: it is encrypted and matrix.encryption is false", room.room_id)
            return True
        return False

    async def after_sync(self) -> None:
        """Leave the joined rooms that are encrypted (called after every sync)."""
        if not self.active:
            return
        for room_id, room in list(self.client.rooms.items()):
            if room.encrypted and room_id not in self._left:
                self._left.add(room_id)
                await self.leave(room_id)

    async def leave(self, room_id: str) -> None:
        """Leave one encrypted room, saying why in the log (the room itself cannot be told in plaintext)."""
        log.warning("matrix: leaving %s: the room is encrypted and matrix.encryption is false", room_id)
        try:
            response = await self.client.room_leave(room_id)
        except Exception as exc:
            response = exc
        if not isinstance(response, RoomLeaveResponse):
            # Forgetting that we tried makes the next sync, which still lists the room, try again.
            log.warning("matrix: leaving %s failed (%s)", room_id, response)
            self._left.discard(room_id)
