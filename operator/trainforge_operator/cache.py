"""What the controller remembers about one job between passes, to save API reads.

A pass needs the job, its pods, its Service and its context ConfigMap. Reading all four on every
pass of hundreds of jobs was most of the operator's API traffic, and in a burst it delayed the
new gangs (the control-plane bench). So:

- the job: the watch delivers every change of it, so the body from the latest watch event, or
  from our own status write until its echo arrives, stands in for a GET while it is the latest
  version the watch reported and younger than `TRUST_SECONDS`;
- the children: once a pass created or saw the Service and an up-to-date ConfigMap for this job
  uid and generation, they are taken to exist until the spec changes or `TRUST_SECONDS` pass.

Both used to expire after resync_seconds (10 s). A burst of 200 jobs lasts minutes on a loaded
machine, so every pass after the first 10 s paid a GET of the job, the Service and the
ConfigMap (2.6, 1.7 and 1.7 per job in the bench; Kubeflow, reading informer caches, none).
kopf resumes a cut job watch from its last resourceVersion and lists again after a 410, so a
live watch misses no change of the job; the timer is only a backstop against a watch that hangs
silently, which the watch's own client timeout (about 300 s, handlers.configure) also ends.
Services and ConfigMaps are not watched: a child deleted behind the operator's back is
recreated within `TRUST_SECONDS`, or at the next spec change.

Pods change on their own (kubelet, scheduler, evictions), so they are not cached per job here:
`kube.PodInformer` keeps every worker pod current from one list+watch per namespace. What is
kept here is which pods our own passes deleted, until the informer shows them going
(`as_deleting`): client-go's controllers keep "expectations" for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trainforge_operator.pods import terminating

Obj = dict[str, Any]
TRUST_SECONDS = 300.0  # the watch's own timeout (handlers.configure: server_timeout)
DELETED_BY_US = "deleted-by-this-operator"  # a deletionTimestamp stand-in: only its truth is read


@dataclass
class JobCache:
    body: Obj | None = None  # the job as last read or written by us ...
    body_at: float = 0.0  # ... and when (monotonic)
    own_version: str = ""  # resourceVersion produced by our last status write
    own_echoed: bool = True  # the watch has delivered that version (events after it are newer)
    own_pending: set[str] = field(default_factory=set)  # our writes not echoed yet
    seen_version: str = ""  # resourceVersion of the latest watch event for this job
    # (job uid, generation, monotonic time) when the Service and an up-to-date ConfigMap were seen
    children_seen: tuple[str, int, float] = ("", 0, 0.0)
    deleted_uids: set[str] = field(default_factory=set)  # pods our passes deleted (as_deleting)
    unwritten: Obj | None = None  # the first pass's status, not written yet (controller says why)

    def watched(self, version: str | None, body: Obj | None) -> bool:
        """Note a watch event of the job; False when it is only the echo of our own write.

        Two passes can write before the first write's echo arrives; that echo is then older
        than our body but no news either (it was ours), so it neither wakes a pass nor drops
        the body (which cost a GET and a pass per such pair in the bench)."""
        if version:
            self.seen_version = version
        if version and version in self.own_pending and version != self.own_version:
            self.own_pending.discard(version)  # an earlier write of ours, already written over
            return False
        echo = bool(version) and version == self.own_version
        if echo:
            self.own_echoed = True
            self.own_pending.clear()
        elif body is not None:
            # Before the echo of our own write arrives, an event may be an older version that
            # the watch delivers late (a slow or cut stream): it must not stand in for what we
            # wrote, or a pass would act on a stale attempt. Read the job afresh instead.
            self.remember(body if self.own_echoed else None)
        return not echo

    def remember(self, body: Obj | None) -> None:
        """The job as just read (None: unknown, read it next time)."""
        self.body, self.body_at = body, time.monotonic()

    def wrote(self, stored: Obj) -> None:
        """Our status write returned `stored`; the watch will echo its resourceVersion."""
        self.unwritten = None
        self.own_version = str(stored.get("metadata", {}).get("resourceVersion", ""))
        self.own_echoed = not self.own_version
        if self.own_version:
            self.own_pending.add(self.own_version)
        self.remember(stored)

    def current_body(self, max_age: float) -> Obj | None:
        """The job as we last read or wrote it, while the watch reports no newer version of it
        (a pod event or a timer woke this pass) and it is younger than `max_age` seconds.

        Our own write stands in before its echo arrives: the watch delivers in order, so any
        event between our write and its echo drops the body (`watched`), and a body still here
        with our version is the newest there is."""
        if self.body is None or not self.seen_version:
            return None
        if time.monotonic() - self.body_at >= max_age:
            return None
        version = self.body.get("metadata", {}).get("resourceVersion")
        own = not self.own_echoed and version == self.own_version
        return self.body if version == self.seen_version or own else None

    def children_known(self, meta: Obj, max_age: float) -> bool:
        """The Service and an up-to-date ConfigMap were seen for this uid and generation, less
        than `max_age` seconds ago."""
        uid, generation, seen_at = self.children_seen
        fresh = time.monotonic() - seen_at < max_age
        return uid == meta.get("uid") and generation == meta.get("generation") and fresh

    def saw_children(self, meta: Obj) -> None:
        """A pass made sure the Service and the ConfigMap of this uid and generation exist."""
        self.children_seen = (
            str(meta.get("uid")),
            int(meta.get("generation") or 0),
            time.monotonic(),
        )

    def deleting(self, uids: Iterable[str]) -> None:
        """A pass deleted these pods (by UID)."""
        self.deleted_uids.update(u for u in uids if u)

    def as_deleting(self, observed: list[Obj]) -> list[Obj]:
        """The observed pods, those our passes deleted shown as terminating until the watch
        says so itself.

        A pass that runs right after a delete, on an informer that has not seen it yet, would
        otherwise take the deleted pod for a live one: a failed worker already counted and
        recreated in place was counted again (restarts 2 for one failure, in the integration
        tier under load). A UID that left the informer is forgotten."""
        if not self.deleted_uids:
            return observed
        self.deleted_uids &= {_uid(pod) for pod in observed}
        return [
            _marked(pod) if _uid(pod) in self.deleted_uids and not terminating(pod) else pod
            for pod in observed
        ]


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _marked(pod: Obj) -> Obj:
    """A copy of `pod` as terminating (the informer's own object is shared: never edited)."""
    meta = dict(pod.get("metadata") or {}, deletionTimestamp=DELETED_BY_US)
    return dict(pod, metadata=meta)
