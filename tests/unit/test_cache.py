"""What the controller remembers between passes: when the watched body stands in for a GET."""

from __future__ import annotations

import pytest

from trainforge_operator.cache import JobCache


def body(version: str, generation: int = 1) -> dict[str, object]:
    return {"metadata": {"resourceVersion": version, "uid": "u1", "generation": generation}}


def test_the_watched_body_stands_in_for_a_get_while_it_is_the_latest() -> None:
    cache = JobCache()
    assert cache.current_body(max_age=10) is None  # nothing watched yet
    cache.watched("5", body("5"))
    assert cache.current_body(max_age=10) == body("5")
    cache.watched("6", None)  # a newer version announced without its body
    assert cache.current_body(max_age=10) is None
    assert cache.current_body(max_age=0) is None  # too old, whatever the version


def test_the_echo_of_our_own_write_is_no_news() -> None:
    cache = JobCache()
    cache.watched("5", body("5"))
    cache.wrote(body("7"))
    assert cache.watched("7", body("7")) is False
    assert cache.current_body(max_age=10) == body("7")
    assert cache.watched("8", body("8")) is True
    assert cache.current_body(max_age=10) == body("8")


def test_a_late_event_from_before_our_write_never_stands_in_for_it() -> None:
    """The watch can deliver an older version after our write returned (a slow or cut stream);
    acting on it recreated pods of an attempt the job had already left (the chaos suite's
    watch-cut duplicate). Until our echo arrives, any other event means: read the job."""
    cache = JobCache()
    cache.watched("5", body("5"))
    cache.wrote(body("7"))
    assert cache.current_body(max_age=10) == body("7")  # nothing since our write: ours is newest
    assert cache.watched("6", body("6")) is True  # late: older than our write
    assert cache.current_body(max_age=10) is None  # not the stale 6: a GET instead
    cache.watched("7", body("7"))  # our echo
    cache.watched("9", body("9"))  # after the echo, events are newer than our write
    assert cache.current_body(max_age=10) == body("9")


@pytest.mark.parametrize(
    ("meta", "max_age", "known"),
    [
        pytest.param({"uid": "u1", "generation": 1}, 10, True, id="same job and spec"),
        pytest.param({"uid": "u1", "generation": 2}, 10, False, id="spec changed"),
        pytest.param({"uid": "u2", "generation": 1}, 10, False, id="a namesake job"),
        pytest.param({"uid": "u1", "generation": 1}, 0, False, id="older than max_age"),
    ],
)
def test_children_are_known_for_one_uid_and_generation(
    meta: dict[str, object], max_age: float, known: bool
) -> None:
    cache = JobCache()
    assert not cache.children_known({"uid": "u1", "generation": 1}, 10)
    cache.saw_children({"uid": "u1", "generation": 1})
    assert cache.children_known(meta, max_age) is known


def test_our_write_stands_in_only_until_its_echo() -> None:
    """Before the echo, our stored body is the newest; after it, only what the watch says is."""
    cache = JobCache()
    cache.watched("5", body("5"))
    cache.wrote(body("7"))
    assert cache.current_body(max_age=10) == body("7")
    cache.watched("7", body("7"))  # the echo
    cache.watched("8", None)  # a newer version announced without its body
    assert cache.current_body(max_age=10) is None


def test_the_echo_of_an_earlier_write_of_ours_is_no_news_and_keeps_our_body() -> None:
    """Two passes wrote (7, then 8) before the first echo arrived: the echo of 7 is older than
    our body, but it was ours; only an event that is not ours drops the body."""
    cache = JobCache()
    cache.watched("5", body("5"))
    cache.wrote(body("7"))
    cache.wrote(body("8"))
    assert cache.watched("7", body("7")) is False
    assert cache.current_body(max_age=10) == body("8")
    assert cache.watched("8", body("8")) is False
    assert cache.current_body(max_age=10) == body("8")
    assert cache.watched("9", body("9")) is True
    assert cache.current_body(max_age=10) == body("9")


def test_an_event_between_two_of_our_writes_still_drops_the_body() -> None:
    cache = JobCache()
    cache.watched("5", body("5"))
    cache.wrote(body("7"))
    cache.wrote(body("9"))
    assert cache.watched("8", body("8")) is True  # someone else's write, before our 9's echo
    assert cache.current_body(max_age=10) is None


def pod(uid: str, terminating: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": f"p-{uid}", "uid": uid}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-30T17:00:00Z"
    return {"metadata": meta, "status": {"phase": "Failed"}}


def test_a_pod_we_deleted_is_terminating_until_the_watch_shows_it_going() -> None:
    """Expectations: a pass right after our delete, on an informer that has not seen it, must
    not take the deleted pod for a live one (it would count its failure again)."""
    cache = JobCache()
    informer = [pod("a"), pod("b")]
    cache.deleting(["a", ""])
    seen = cache.as_deleting(informer)
    assert [bool(p["metadata"].get("deletionTimestamp")) for p in seen] == [True, False]  # type: ignore[union-attr]
    assert "deletionTimestamp" not in informer[0]["metadata"]  # type: ignore[operator]
    informer = [pod("a", terminating=True), pod("b")]  # the watch caught up
    assert cache.as_deleting(informer) == informer
    assert cache.as_deleting([pod("b")]) == [pod("b")]  # a is gone: forgotten
    assert cache.deleted_uids == set()
