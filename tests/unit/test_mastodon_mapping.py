"""Mastodon statuses as real servers shape them, through the connector's mapping and its de-duplication
(no network: the source is fed statuses directly, in both forms Mastodon.py hands them over)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from connectors.links import absolute_link
from connectors.mastodon import MastodonSource, edit_time, local_uid, to_post
from shared.keywords import extract_keywords
from shared.post import InvalidPost, parse_post
from shared.settings import MastodonSettings
from tests.fakes.mastodon import (
    HOST,
    OTHER_SERVER_MENTIONS,
    boost,
    content_warning,
    custom_emoji,
    edit,
    misskey_quote,
    poll,
    quote,
    reply,
    status,
)

NOW = int(datetime.now(UTC).timestamp() * 1000)
INSTANCE = f"https://{HOST}"


def source(**settings) -> MastodonSource:
    return MastodonSource(MastodonSettings(instance=INSTANCE, access_token="t", **settings), client=object())


def as_mastodon_py(status_dict: dict, *, event: bool) -> dict:
    """What Mastodon.py hands over: datetimes in REST pages and `update` events, ISO strings in `status.update`
    events (its event-type table knows `status_update`, the wire says `status.update`)."""
    if event:
        return status_dict
    return status_dict | {key: datetime.fromisoformat(value) if isinstance(value, str) else value
                          for key in ("created_at", "edited_at") if (value := status_dict[key]) is not None}


def posts(items) -> list[dict]:
    return [item.payload for item in items if not item.deleted and not item.rejected]


def test_the_same_edit_as_a_datetime_and_as_a_string_is_sent_once():
    original = status(5)
    edited = edit(original, "<p>Status 5, edited</p>", datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    assert edit_time(as_mastodon_py(edited, event=False)["edited_at"]) == edit_time(edited["edited_at"])
    src = source()
    sent = []
    for item in (as_mastodon_py(original, event=False), as_mastodon_py(edited, event=False), edited,
                 as_mastodon_py(edited, event=False), edited):
        sent += posts(src._status(item))
    assert [p["text"] for p in sent] == ["Status 5 about #fediverse", "Status 5, edited"]
    assert {p["uid"] for p in sent} == {original["uri"]}
    later = edit(original, "<p>again</p>", datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    assert [p["text"] for p in posts(src._status(later))] == ["again"]  # a later edit is a new version


def test_replies_name_their_parent_and_root_by_uid():
    src = source()
    top, first = status(1), None
    first = reply(2, top)
    second = reply(3, first)
    stranger = reply(4, status(77))  # its parent was never seen by this process
    out = {p["uid"]: p for s in (top, first, second, stranger) for p in posts(src._status(s))}
    assert (out[top["uri"]]["reply_parent"], out[top["uri"]]["reply_root"]) == (None, None)
    assert (out[first["uri"]]["reply_parent"], out[first["uri"]]["reply_root"]) == (top["uri"], top["uri"])
    assert (out[second["uri"]]["reply_parent"], out[second["uri"]]["reply_root"]) == (first["uri"], top["uri"])
    unseen = local_uid(INSTANCE, status(77)["id"])
    assert unseen == f"https://{HOST}/api/v1/statuses/{status(77)['id']}"
    assert (out[stranger["uri"]]["reply_parent"], out[stranger["uri"]]["reply_root"]) == (unseen, unseen)


def test_a_quote_posts_fallback_paragraph_is_not_text_or_link():
    quoted = status(9, html="<p>the original</p>")
    post = parse_post(to_post(quote(10, quoted, "My take on <a href=\"https://blog.example/x\">this</a>"), HOST),
                      now=NOW)
    assert post.text == "My take on this" and post.links == ("https://blog.example/x",)
    post = parse_post(to_post(misskey_quote(11, quoted["url"]), HOST), now=NOW)
    assert post.text == "Quoting" and post.links == ()


@pytest.mark.parametrize("software", sorted(OTHER_SERVER_MENTIONS))
def test_mentions_from_other_server_software_are_not_links(software):
    html, mentions = OTHER_SERVER_MENTIONS[software]
    post = parse_post(to_post(status(1, html=html, mentions=mentions), HOST), now=NOW)
    assert post.links == () and post.mentions == (mentions[0]["acct"],)
    assert post.text.endswith("nice")
    # The same anchor to someone not mentioned, without classes, is a link.
    plain = parse_post(to_post(status(1, html='<p><a href="https://x.example/@z">@z</a></p>'), HOST), now=NOW)
    assert plain.links == ("https://x.example/@z",)


def test_custom_emoji_are_not_words():
    post = parse_post(to_post(custom_emoji(1), HOST), now=NOW)
    assert post.text == "feelings\n\nHappy pride everyone"
    keywords = extract_keywords(post.text, post.hashtags, post.langs)
    assert not {"trans_heart", "blobcat_happy", "trans", "heart", "blobcat"} & set(keywords)
    assert "pride" in keywords


def test_content_warnings_and_polls_keep_their_text_and_drop_the_rest():
    warned = parse_post(to_post(content_warning(1), HOST), now=NOW)
    assert warned.text == "food, long\n\nToday I cooked soup"
    polled = parse_post(to_post(poll(2), HOST), now=NOW)
    assert polled.text == "Tabs or spaces?" and polled.links == ()


def test_deletes_of_unseen_statuses_resolve_to_a_uid():
    src = source()
    seen = status(1)
    list(src._status(seen))
    src.events.put(("delete", seen["id"]))
    src.events.put(("delete", "109999999999"))
    src.events.put(("closed", None))
    notices = [item.payload for item in src._drain() if item.deleted]
    assert notices == [{"uid": seen["uri"], "local_id": seen["id"], "community": HOST},
                       {"uid": f"{INSTANCE}/api/v1/statuses/109999999999", "local_id": "109999999999",
                        "community": HOST}]


@pytest.mark.parametrize("reblogs", ["skip", "unwrap"])
def test_a_boost_never_sends_the_original_again(reblogs):
    src = source(reblogs=reblogs)
    original = status(1, created=datetime.now(UTC) - timedelta(days=3))
    first, second = boost(2, original), boost(3, original)
    sent = posts(src._status(first)) + posts(src._status(second)) + posts(src._status(original))
    if reblogs == "skip":
        assert [p["uid"] for p in sent] == [original["uri"]]
    else:  # unwrapped once, with its own time; a second boost and the original itself send nothing more
        assert [(p["uid"], p["created_at"]) for p in sent] == [(original["uri"], original["created_at"])]
    src2 = source(reblogs=reblogs)
    assert posts(src2._status(original)) and not posts(src2._status(first))  # seen first: the boost adds nothing


def test_an_unreadable_status_is_a_dead_letter_of_its_own():
    src = source()
    broken = [status(2, uri={"id": "https://bridge.example/objects/2", "type": "Note"}),  # a JSON-LD object
              status(3, tags=["rust"]),  # tags as bare names
              "not a status", None]
    items = [item for s in (status(1), *broken, status(4)) for item in src._status(s)]
    assert len(items) == 6  # one item per status, the unreadable ones included

    def dead_letter(item) -> bool:
        if item.rejected:
            return True
        try:
            parse_post(item.payload, now=NOW)
        except InvalidPost:
            return True
        return False

    assert [dead_letter(item) for item in items] == [False, True, True, True, True, False]
    assert [items[0].payload["uid"], items[-1].payload["uid"]] == [status(1)["uri"], status(4)["uri"]]
    assert items[2].rejected[0] == "invalid_status" and items[2].payload["id"] == status(3)["id"]


def random_status(rng: random.Random, n: int, seen: list[dict]) -> dict:
    makers = [lambda: status(n), lambda: content_warning(n), lambda: custom_emoji(n), lambda: poll(n),
              lambda: quote(n, rng.choice(seen) if seen else status(0)), lambda: misskey_quote(n, status(0)["url"]),
              lambda: reply(n, rng.choice(seen) if seen else status(10_000 + n)),
              lambda: status(n, html=(pair := OTHER_SERVER_MENTIONS[rng.choice(sorted(OTHER_SERVER_MENTIONS))])[0],
                             mentions=pair[1]),
              lambda: status(n, html='<p>read <a href="https://news.example/a-b_(c)" rel="nofollow">https://news.'
                                     'example/a-b_(c)</a> and <a href="/relative">rel</a></p>',
                             card={"url": "https://news.example/a-b_(c)", "title": "t"}),
              lambda: boost(n, rng.choice(seen) if seen else status(0))]
    made = rng.choice(makers)()
    if rng.random() < 0.3 and not made.get("reblog"):
        made = edit(made, made["content"] + "<p>(edited)</p>", datetime(2026, 11, 26, tzinfo=UTC)
                    + timedelta(minutes=n))
    return as_mastodon_py(made, event=rng.random() < 0.5)


def test_property_random_real_shaped_statuses_keep_the_post_invariants():
    rng = random.Random(25)
    src = source(reblogs="unwrap")
    seen: list[dict] = []
    versions: dict[str, int] = {}
    for n in range(1, 400):
        made = random_status(rng, n, seen)
        items = list(src._status(made))
        # Every status once more, in the other form: nothing new is sent.
        again = made | {k: made[k].isoformat() for k in ("created_at", "edited_at") if isinstance(made[k], datetime)}
        assert posts(src._status(again)) == []
        if not made.get("reblog"):
            seen.append(made)
        for item in items:
            assert not item.rejected, item.rejected
            post = parse_post(item.payload, now=NOW)
            versions[post.uid] = versions.get(post.uid, 0) + 1
            assert post.uid and post.uid.startswith("https://") and post.author_id.startswith("https://")
            assert ":trans_heart:" not in post.text and "RE: " not in post.text
            for link in post.links:
                assert absolute_link(link) == link and urlsplit(link).scheme in ("http", "https")
                assert link[-1] not in ".,;:!?'\"" and link.count(")") <= link.count("(")
                assert "/@" not in link and "/users/" not in link and "/profile/" not in link  # no mention links
            for parent in (post.reply_parent, post.reply_root):
                assert parent is None or parent.startswith("https://")
    assert max(versions.values()) <= 2  # an original and at most one edit each: nothing sent twice
    assert len(versions) > 100
