"""The follow and briefing chat commands, the same on every platform: what they do, as plain data."""

from __future__ import annotations

from bot.follow.core import BriefingUsage, Follow, normalise_topic
from bot.follow.models import Following
from embeddings.language import detect_language

COMMANDS = ("follow", "following", "unfollow", "briefing")
OFF = ("off", "uit", "stop", "none", "geen")

Result = Following | tuple[str, dict]


def run_command(follow: Follow, chat: str, command: str, arg: str, ui: str, prefix: str, fallback: str) -> Result:
    """Do ``command`` for ``chat``: a message key with its parameters, or the /following list.

    Raises the :class:`bot.errors.BronError` subclasses of :mod:`bot.follow.core` for bad input.
    """
    arg = " ".join((arg or "").split())
    if command == "follow":
        topic = normalise_topic(arg)
        # A topic is a few words, seldom with a function word to tell its language; without one it is
        # read in answer.language_fallback (the articles' usual language), not the chat's: an English
        # user's "storm" read as English matched Dutch articles about farmers and wolves.
        sub = follow.follow(chat, topic, detect_language(topic, fallback), ui, prefix)
        return ("follow_added", {"topic": sub.topic})
    if command == "unfollow" and arg:
        sub = follow.unfollow(chat, arg, prefix)
        return ("follow_removed", {"topic": sub.topic})
    if command == "following" or (command == "unfollow" and not arg):
        return follow.following(chat)  # /unfollow alone: the numbers to choose from
    parts = arg.split()
    if parts and parts[0].lower() in OFF:
        return ("briefing_stopped" if follow.briefing_off(chat) else "briefing_not_set", {})
    if not parts:
        setting = follow.briefing_setting(chat)
        if setting is None:
            raise BriefingUsage(p=prefix)
        return ("following_briefing", {"at": setting.at, "tz": setting.tz})
    setting = follow.set_briefing(chat, parts[0], parts[1] if len(parts) > 1 else None, ui, prefix)
    return ("briefing_set", {"at": setting.at, "tz": setting.tz})
