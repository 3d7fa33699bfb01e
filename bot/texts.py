"""Every sentence the bot says, in Dutch and English.

Front ends call :func:`t` with a message key and a language; unknown languages fall back to English.
"""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "abstain": {
        "nl": "Ik heb in de artikelen geen passage gevonden die deze vraag beantwoordt.",
        "en": "I found no passage in the articles that answers this question.",
    },
    "scope_header": {"nl": "In artikelen {what}:", "en": "In articles {what}:"},
    "scope_empty": {
        "nl": "Ik heb geen artikelen {what}, dus ik kan niets citeren.",
        "en": "I have no articles {what}, so there is nothing to quote.",
    },
    "abstain_more": {
        "nl": "{cmd} toont de passages die er het dichtst bij kwamen.",
        "en": "{cmd} shows the passages that came closest.",
    },
    "more_hint": {
        "nl": "Meer bronnen: {cmd}",
        "en": "More sources: {cmd}",
    },
    "more_quotes": {"nl": "De citaten van het antwoord, volledig:", "en": "The answer's quotes in full:"},
    "more_others": {
        "nl": "Andere passages die in de buurt kwamen (ze beantwoorden de vraag mogelijk niet):",
        "en": "Other passages that came close (they may not answer the question):",
    },
    "more_none": {"nl": "Er zijn geen andere passages.", "en": "There are no other passages."},
    "button_more": {"nl": "Meer bronnen", "en": "More sources"},
    "no_link": {"nl": "geen link", "en": "no link"},
    "no_date": {"nl": "datum onbekend", "en": "date unknown"},
    "first_seen": {"nl": "datum onbekend, in Bron sinds {day}", "en": "date unknown, in Bron since {day}"},
    "summary_of": {"nl": "Samenvatting van", "en": "Summary of"},
    "sources_title": {"nl": "Bronnen van het laatste antwoord:", "en": "Sources of the last answer:"},
    "articles_title": {
        "nl": "Artikelen ({total}), pagina {page} van {pages}:",
        "en": "Articles ({total}), page {page} of {pages}:",
    },
    "empty_question": {
        "nl": "Stel een vraag, bijvoorbeeld: Waar verbleef een van de daders?",
        "en": "Please ask a question, for example: Where did one of the attackers stay?",
    },
    "question_too_long": {
        "nl": "Die vraag is te lang (meer dan {limit} tekens). Stel een kortere vraag.",
        "en": "That question is too long (over {limit} characters). Please ask a shorter one.",
    },
    "unknown_article": {
        "nl": "Ik ken geen artikel '{ref}'. Gebruik /articles voor de lijst.",
        "en": "I know no article '{ref}'. Use /articles to see the list.",
    },
    "no_previous_answer": {
        "nl": "Er is nog geen antwoord om naar te verwijzen. Stel eerst een vraag, of noem een artikel: /summary 1",
        "en": "There is no answer to refer to yet. Ask a question first, or name an article: /summary 1",
    },
    "empty_corpus": {
        "nl": "Er zijn nog geen artikelen geïndexeerd.",
        "en": "No articles have been indexed yet.",
    },
    "fetch_failed": {
        "nl": "Ik kon {url} niet toevoegen: {reason}.",
        "en": "I could not add {url}: {reason}.",
    },
    "empty_index": {
        "nl": "De index in {data_dir} is leeg: er zijn nog geen artikelen om uit te citeren. Voeg artikelen "
        "toe met: bron ingest PAD (artikelbestanden, mappen of webadressen).",
        "en": "The index in {data_dir} is empty: there are no articles to quote yet. Add articles with: "
        "bron ingest PATH (article files, folders or web addresses).",
    },
    "index_write_failed": {
        "nl": "De index kon niet worden opgeslagen in {data_dir}: {reason}. De vorige index is ongewijzigd en "
        "blijft antwoorden. Maak ruimte vrij (of herstel de rechten van de map) en voeg de artikelen opnieuw toe.",
        "en": "Could not save the index in {data_dir}: {reason}. The previous index is unchanged and still "
        "answers. Free some disk space (or fix the folder's permissions) and add the articles again.",
    },
    "storage_unavailable": {
        "nl": "De database van Bron is even niet bereikbaar. Probeer het over een minuut opnieuw.",
        "en": "Bron's database cannot be reached right now. Please try again in a minute.",
    },
    "error": {
        "nl": "Sorry, er ging iets mis. Probeer het later opnieuw.",
        "en": "Sorry, something went wrong. Please try again later.",
    },
    "unauthorized": {
        "nl": "Sorry, deze bot is alleen voor genodigde gebruikers.",
        "en": "Sorry, this bot is for invited users only.",
    },
    "rate_limited": {
        "nl": "Even rustig aan: probeer het over {seconds} seconden opnieuw.",
        "en": "Slow down a little: try again in {seconds} seconds.",
    },
    "admin_only": {
        "nl": "Alleen beheerders kunnen artikelen toevoegen.",
        "en": "Only admins can add articles.",
    },
    "upload_type": {
        "nl": "Dit bestandstype kan ik niet lezen. Stuur een {types}-bestand.",
        "en": "I cannot read this file type. Please send a {types} file.",
    },
    "upload_too_big": {
        "nl": "Dat bestand is te groot (maximaal {mb} MB).",
        "en": "That file is too large (at most {mb} MB).",
    },
    "ingest_working": {"nl": "Bezig met toevoegen…", "en": "Adding…"},
    "ingest_added": {"nl": "Toegevoegd: {title}", "en": "Added: {title}"},
    "ingest_updated": {"nl": "Bijgewerkt: {title}", "en": "Updated: {title}"},
    "ingest_unchanged": {"nl": "Dit artikel stond er al in, ongewijzigd.", "en": "This article was already indexed, unchanged."},
    "ingest_duplicate": {
        "nl": "Dit artikel stond er al in, onder een ander adres: {title}",
        "en": "This article was already indexed under another address: {title}",
    },
    "add_usage": {"nl": "Gebruik: {p}add https://…", "en": "Usage: {p}add https://…"},
    "ingest_skipped": {"nl": "Niet toegevoegd: {why}", "en": "Not added: {why}"},
    "matrix_undecryptable": {
        "nl": "Ik kan een versleuteld bericht in deze kamer niet lezen: de sleutel ervan is niet met mij "
        "gedeeld. Stuur je vraag opnieuw; als dat niet helpt, verlaat de kamer en nodig me opnieuw uit.",
        "en": "I cannot read an encrypted message in this room: its key was not shared with me. Please send "
        "your question again; if that does not help, leave the room and invite me again.",
    },
    "follow_usage": {
        "nl": "Noem een onderwerp om te volgen, bijvoorbeeld: {p}follow stikstof boeren",
        "en": "Name a topic to follow, for example: {p}follow nitrogen farmers",
    },
    "follow_too_many": {
        "nl": "Je volgt al {limit} onderwerpen. Stop er eerst een met {p}unfollow NUMMER.",
        "en": "You already follow {limit} topics. Stop one first with {p}unfollow NUMBER.",
    },
    "unfollow_unknown": {
        "nl": "Er is geen onderwerp {number}. {p}following toont de nummers.",
        "en": "There is no topic {number}. {p}following shows the numbers.",
    },
    "briefing_usage": {
        "nl": "Gebruik: {p}briefing 07:30 (eventueel met tijdzone, bv. {p}briefing 07:30 Europe/London) of {p}briefing off",
        "en": "Usage: {p}briefing 07:30 (optionally with a time zone, e.g. {p}briefing 07:30 Europe/London) or {p}briefing off",
    },
    "briefing_timezone": {
        "nl": "Tijdzone '{tz}' ken ik niet. Gebruik een naam als Europe/Amsterdam of UTC.",
        "en": "I do not know time zone '{tz}'. Use a name such as Europe/Amsterdam or UTC.",
    },
    "follow_added": {
        "nl": "Je volgt nu: {topic}. Als een nieuw artikel hierover iets meldt, stuur ik de zin die het zegt, met de bron.",
        "en": "You now follow: {topic}. When a new article reports on it, I send you the sentence that says so, with its source.",
    },
    "follow_removed": {"nl": "Je volgt niet meer: {topic}", "en": "You no longer follow: {topic}"},
    "following_none": {
        "nl": "Je volgt nog geen onderwerpen. Begin met {p}follow ONDERWERP.",
        "en": "You follow no topics yet. Start with {p}follow TOPIC.",
    },
    "following_title": {"nl": "Je volgt:", "en": "You follow:"},
    "following_unfollow": {"nl": "Stoppen: {p}unfollow NUMMER", "en": "To stop: {p}unfollow NUMBER"},
    "following_briefing": {"nl": "Dagelijkse briefing om {at} ({tz}).", "en": "Daily briefing at {at} ({tz})."},
    "briefing_set": {
        "nl": "Elke dag om {at} ({tz}) stuur ik je de belangrijkste verhalen sinds de vorige briefing.",
        "en": "Every day at {at} ({tz}) I send you the main stories since the previous briefing.",
    },
    "briefing_stopped": {"nl": "De dagelijkse briefing is uitgezet.", "en": "The daily briefing is off."},
    "briefing_not_set": {"nl": "Er stond geen dagelijkse briefing aan.", "en": "There was no daily briefing."},
    "push_header": {"nl": "Nieuw over „{topic}”:", "en": "New on “{topic}”:"},
    "push_summary": {"nl": "Samenvatting: {cmd}", "en": "Summary: {cmd}"},
    "briefing_title": {"nl": "Briefing van {when}", "en": "Briefing of {when}"},
    "briefing_empty": {
        "nl": "Briefing van {when}: sinds de vorige briefing zijn er geen nieuwe artikelen.",
        "en": "Briefing of {when}: no new articles since the previous briefing.",
    },
    "briefing_also": {"nl": "Ook bij: {outlets}", "en": "Also in: {outlets}"},
    "unknown_command": {
        "nl": "Het commando {cmd} ken ik niet. {p}help laat zien wat ik kan.",
        "en": "I don't know the command {cmd}. {p}help shows what I can do.",
    },
    "follow_terminal": {
        "nl": "Onderwerpen volgen en de dagelijkse briefing werken in Telegram en Matrix (/follow, !follow): daar komen de berichten aan.",
        "en": "Following topics and the daily briefing work in Telegram and Matrix (/follow, !follow): that is where the messages arrive.",
    },
    "cmd_follow": {"nl": "Volg een onderwerp", "en": "Follow a topic"},
    "cmd_following": {"nl": "Onderwerpen die je volgt", "en": "Topics you follow"},
    "cmd_unfollow": {"nl": "Stop met volgen", "en": "Stop following"},
    "cmd_briefing": {"nl": "Dagelijkse briefing (07:30 of off)", "en": "Daily briefing (07:30 or off)"},
    "button_summary": {"nl": "Samenvatting", "en": "Summary"},
    "button_source": {"nl": "Bron", "en": "Source"},
    "button_prev": {"nl": "« Vorige", "en": "« Previous"},
    "button_next": {"nl": "Volgende »", "en": "Next »"},
    "help": {
        "nl": (
            "Ik beantwoord vragen over nieuwsartikelen door de passages te citeren die het antwoord "
            "geven, met hun bron.\n\n"
            "{p}ask VRAAG — stel een vraag (of typ gewoon je vraag)\n"
            "{p}summary [ARTIKEL] — samenvatting van het artikel uit het laatste antwoord, of van een "
            "artikel op nummer of titel\n"
            "{p}source — de links achter het laatste antwoord\n"
            "{p}more — de volledige citaten en andere passages die in de buurt kwamen\n"
            "{p}articles [PAGINA] — de lijst van artikelen\n"
            "{p}follow ONDERWERP — bericht als een nieuw artikel over het onderwerp iets meldt; "
            "{p}following, {p}unfollow NUMMER\n"
            "{p}briefing 07:30 — elke dag de belangrijkste verhalen ({p}briefing off)\n"
            "{p}help — deze uitleg"
        ),
        "en": (
            "I answer questions about news articles by quoting the passages that answer them, with "
            "their source.\n\n"
            "{p}ask QUESTION — ask a question (or just type it)\n"
            "{p}summary [ARTICLE] — summary of the article in the last answer, or of one named by "
            "number or title\n"
            "{p}source — the links behind the last answer\n"
            "{p}more — the full quotes and other passages that came close\n"
            "{p}articles [PAGE] — the list of articles\n"
            "{p}follow TOPIC — a message when a new article reports on the topic; "
            "{p}following, {p}unfollow NUMBER\n"
            "{p}briefing 07:30 — the main stories every day ({p}briefing off)\n"
            "{p}help — this help"
        ),
    },
    "welcome": {
        "nl": "Hallo! Ik ben Bron. Stel me een vraag over de artikelen.",
        "en": "Hello! I am Bron. Ask me a question about the articles.",
    },
    "cmd_ask": {"nl": "Stel een vraag over de artikelen", "en": "Ask a question about the articles"},
    "cmd_summary": {"nl": "Samenvatting van een artikel", "en": "Summary of an article"},
    "cmd_source": {"nl": "Links achter het laatste antwoord", "en": "Links behind the last answer"},
    "cmd_more": {"nl": "Volledige citaten en meer bronnen", "en": "Full quotes and more sources"},
    "cmd_articles": {"nl": "Lijst van artikelen", "en": "List of articles"},
    "cmd_help": {"nl": "Uitleg", "en": "Help"},
    "cmd_start": {"nl": "Begin", "en": "Start"},
}

LANGUAGES = ("nl", "en")


def t(key: str, lang: str, **params: object) -> str:
    """Return message ``key`` in ``lang`` (English if unknown), formatted with ``params``."""
    entry = MESSAGES[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**params) if params else text
