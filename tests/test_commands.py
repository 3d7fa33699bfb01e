"""The chat commands as a user types them in `bron chat`: summary, source, articles, help."""

from __future__ import annotations

from bot.chat import ChatSession
from bot.core import Bron
from support import SEED_QUESTION_NL


def test_summary_follows_the_last_answer(bron: Bron) -> None:
    chat = ChatSession(bron, "t-summary")
    chat.handle(SEED_QUESTION_NL)
    reply = "\n".join(chat.handle("/summary"))
    assert reply.startswith("Samenvatting van")
    assert "Expert waarschuwt" in reply


def test_summary_sentences_come_from_the_article_in_order(bron: Bron) -> None:
    article = bron.find_article("1")
    summary = bron.summarize("1", "t-sum2")
    text = bron.library.article_text(article.id)
    assert 3 <= len(summary.sentences) <= 5
    positions = [text.index(s) for s in summary.sentences]
    assert positions == sorted(positions)


def test_summary_by_title_words_and_unknown_reference(bron: Bron) -> None:
    chat = ChatSession(bron, "t-ref")
    assert "Expert waarschuwt" in "\n".join(chat.handle("/summary isis europese"))
    assert "Ik ken geen artikel '42'" in chat.handle("/summary 42")[0]
    assert "Ik ken geen artikel 'giraffen'" in chat.handle("/summary giraffen")[0]


def test_source_after_an_answer_and_before_any(bron: Bron) -> None:
    chat = ChatSession(bron, "t-source")
    assert "Er is nog geen antwoord" in chat.handle("/source")[0]
    chat.handle("Where did one of the attackers stay?")
    reply = chat.handle("/source")[0]
    assert reply.startswith("Sources of the last answer:")
    assert "[1] Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen — ANHA" in reply
    assert "no link" in reply


def test_articles_list_and_help(bron: Bron) -> None:
    chat = ChatSession(bron, "t-list")
    listing = chat.handle("/articles")[0]
    assert "pagina 1 van 1" in listing and "Expert waarschuwt" in listing
    assert "/summary" in chat.handle("/help")[0]
