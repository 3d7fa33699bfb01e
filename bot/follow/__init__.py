"""Follow topics and daily briefings (issue 13): subscriptions, matching new articles, near-duplicate
stories, briefings and the outbox, independent of Telegram and Matrix (see :mod:`bot.follow.core`)."""

from bot.follow.core import Follow, ScanReport
from bot.follow.models import Briefing, BriefingItem, Following, Outgoing, Push, Subscription
from bot.follow.runner import FollowRunner, SendError

__all__ = [
    "Briefing", "BriefingItem", "Follow", "FollowRunner", "Following", "Outgoing", "Push", "ScanReport",
    "SendError", "Subscription",
]
