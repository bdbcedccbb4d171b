"""Reddit listing items as real responses shape them, through the connector's mapping (no network)."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest

from connectors.links import absolute_link, links_in_text
from connectors.reddit import map_child, to_post, version_key
from shared.keywords import extract_keywords
from shared.post import parse_post
from tests.fakes.reddit import (
    LONG_USERNAMES,
    MARKDOWN_BODIES,
    crosspost,
    deleted,
    edited,
    older,
    real_comment,
    real_submission,
    removed,
)

T0 = 1_764_000_000.0  # 2025-11-24


def post_of(child: dict):
    kind, payload = map_child(child)
    assert kind == "post", payload
    return parse_post(payload, now=int(T0 * 1000) + 3_600_000)


@pytest.mark.parametrize("make", [deleted, removed], ids=["deleted", "removed"])
@pytest.mark.parametrize("kind", ["t1", "t3"])
def test_deleted_and_removed_items_are_deletion_notices_not_posts(make, kind):
    child = (real_comment("c1", "python", T0, link="t3_s1") if kind == "t1"
             else real_submission("s1", "python", T0, selftext="some text"))
    gone = make(child)
    assert map_child(gone) == ("delete", {"uid": child["data"]["name"], "reason": make.__name__,
                                          "community": "r/python"})
    # Only the author gone (account deleted since): the item is gone too.
    assert map_child({"kind": kind, "data": child["data"] | {"author": "[deleted]"}})[0] == "delete"
    assert version_key(gone["data"]) == f"{child['data']['name']}@deleted"


def test_a_crossposts_relative_url_is_not_a_link():
    parent = real_submission("p1", "pics", T0 - 60, selftext="original words")
    post = post_of(crosspost("x1", "python", T0, parent))
    assert crosspost("x1", "python", T0, parent)["data"]["url"].startswith("/r/pics/comments/")
    assert post.links == ()
    link_parent = real_submission("p2", "news", T0 - 60, url="https://news.example.com/story?id=7")
    assert post_of(crosspost("x2", "python", T0, link_parent)).links == ("https://news.example.com/story?id=7",)


@pytest.mark.parametrize(("body", "links"), MARKDOWN_BODIES)
def test_links_in_markdown_and_html_are_read_as_a_reader_would(body, links):
    assert post_of(real_comment("c1", "python", T0, link="t3_s1", body=body)).links == tuple(links)
    post = post_of(real_submission("s1", "python", T0, selftext=body))
    assert post.links == tuple(links) and "\\_" not in post.text


@pytest.mark.parametrize("name", LONG_USERNAMES)
def test_usernames_longer_than_20_characters_are_not_cut(name):
    post = post_of(real_comment("c1", "python", T0, link="t3_s1", body=f"thanks u/{name}! and /u/{name}."))
    assert post.mentions == (name,)
    escaped = name.replace("_", "\\_")  # the rich text editor escapes underscores
    assert post_of(real_comment("c2", "python", T0, link="t3_s1", body=f"hi u/{escaped}")).mentions == (name,)


def test_an_edit_is_a_new_version_of_the_same_uid():
    child = real_comment("c1", "python", T0, link="t3_s1", body="first")
    first, second = edited(child, "second", T0 + 60), edited(child, "third", T0 + 120)
    assert [version_key(c["data"]) for c in (child, first, second)] == ["t1_c1", f"t1_c1@{T0 + 60:.0f}",
                                                                         f"t1_c1@{T0 + 120:.0f}"]
    assert {post_of(c).uid for c in (child, first, second)} == {"t1_c1"}
    assert post_of(second).text == "third" and post_of(second).created_at == int(T0 * 1000)


def test_nsfw_and_spoiler_flags_have_no_place_and_change_nothing_else():
    plain = real_submission("s1", "python", T0, selftext="the ending")
    flagged = {"kind": "t3", "data": plain["data"] | {"over_18": True, "spoiler": True}}
    assert to_post(flagged) == to_post(plain)
    assert {"over_18", "spoiler", "nsfw", "sensitive"}.isdisjoint(post_of(flagged).to_record())


def test_items_without_author_fullname_fall_back_to_u_username():
    child = real_comment("c1", "python", T0, link="t3_s1", author="GallowBoob")
    assert post_of(child).author_id == child["data"]["author_fullname"]
    assert post_of(older(child)).author_id == "u/GallowBoob"
    assert post_of(older(real_submission("s9", "pics", T0, author="GallowBoob"))).author_id == "u/GallowBoob"


def random_item(rng: random.Random, n: int, authors: list[str]) -> dict:
    """One real-shaped item of a random kind, with random real-shaped variations on top."""
    author = rng.choice(authors)
    body = " ".join(rng.choice([b for b, _ in MARKDOWN_BODIES] + [f"cc u/{rng.choice(LONG_USERNAMES)}",
                                                                  "plain words", "🎉"])
                    for _ in range(rng.randint(1, 3)))
    shape = rng.choice(["comment", "self", "link", "crosspost", "crosspost_link"])
    if shape == "comment":
        child = real_comment(f"c{n}", "python", T0 + n, link=f"t3_s{n // 3}", author=author, body=body)
    elif shape == "self":
        child = real_submission(f"s{n}", "python", T0 + n, author=author, selftext=body)
    elif shape == "link":
        child = real_submission(f"s{n}", "python", T0 + n, author=author, title=body,
                                url=rng.choice(["https://i.redd.it/abc.jpg", "https://www.reddit.com/gallery/x1",
                                                "https://example.com/a."]))
    else:
        parent = real_submission(f"p{n}", "pics", T0, selftext="orig") if shape == "crosspost" else \
            real_submission(f"p{n}", "news", T0, url="https://news.example.com/s")
        child = crosspost(f"s{n}", "python", T0 + n, parent, author=author)
    for change in rng.sample(["deleted", "removed", "edited", "older", "nsfw"], rng.randint(0, 2)):
        child = {"deleted": deleted, "removed": removed, "older": older,
                 "edited": lambda c: edited(c, body + " (edit)", T0 + n + 30),
                 "nsfw": lambda c: {"kind": c["kind"], "data": c["data"] | {"over_18": True, "spoiler": True}},
                 }[change](child)
    return child


def test_property_random_real_shaped_items_keep_the_post_invariants():
    rng = random.Random(25)
    authors = ["spez", "GallowBoob", *LONG_USERNAMES]
    ids_by_author: dict[tuple[str, bool], set[str]] = {}
    counts = {"post": 0, "delete": 0}
    for n in range(600):
        child = random_item(rng, n, authors)
        kind, payload = map_child(child)
        counts[kind] += 1
        assert payload["uid"] == child["data"]["name"] and payload["uid"]
        if kind == "delete":
            assert payload["reason"] in ("deleted", "removed")
            continue
        post = parse_post(payload, now=int(T0 * 1000) + 3_600_000)
        assert post.uid and post.author_id and post.author_id not in ("[deleted]", "u/[deleted]")
        assert post.text.strip() not in ("[deleted]", "[removed]") and "\\_" not in post.text
        assert not {"deleted", "removed"} & set(extract_keywords(post.text, post.hashtags, post.langs))
        for link in post.links:
            assert absolute_link(link) == link and urlsplit(link).scheme in ("http", "https")
            assert link[-1] not in ".,;:!?'\"*_" and link.count(")") <= link.count("(")
        assert all(len(m) >= 3 and m in LONG_USERNAMES for m in post.mentions)
        has_fullname = "author_fullname" in child["data"]
        ids_by_author.setdefault((child["data"]["author"], has_fullname), set()).add(post.author_id)
    assert counts["post"] > 200 and counts["delete"] > 100  # both paths were exercised
    # The same author always gets the same id (one per form: fullname, or u/<name> without one).
    assert all(len(ids) == 1 for ids in ids_by_author.values()), ids_by_author


def test_links_rule_keeps_only_absolute_http_urls():
    assert [absolute_link(u) for u in ("/r/python/comments/x/", "https://", "mailto:a@b.c", "http://ok.example/x",
                                       "https://bad port:x/", "HTTPS://EXAMPLE.COM")] == \
        [None, None, None, "http://ok.example/x", None, "HTTPS://EXAMPLE.COM"]
    assert links_in_text("ends with https://example.com/path/... and https://example.com/x?)") == \
        ["https://example.com/path/", "https://example.com/x"]
