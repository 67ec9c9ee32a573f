"""The answers feedback is checked against: the latest ones in memory, older ones asked of the event store.

An impression reaches the event store in the background, a moment after its answer; a client may send `shown` for
it sooner. The gateway keeps the films of its latest `size` answers (and which events each already got) so that such
feedback is checked at once; anything older, or answered by another gateway on the same store, is looked up there.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Answer:
    """The films an answer returned, in order, who asked, and the (film, event) pairs recorded for it so far."""

    films: tuple[int, ...]
    user: str | None
    seen: set[tuple[int, str]] = field(default_factory=set)


class RecentAnswers:
    """A bounded map request id → Answer, oldest dropped first; plus the user events (no request) seen lately."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._user_events: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def add(self, request_id: str, answer: Answer) -> None:
        self._answers[request_id] = answer
        if len(self._answers) > self._size:
            self._answers.popitem(last=False)

    def get(self, request_id: str) -> Answer | None:
        return self._answers.get(request_id)

    def first_user_event(self, key: str) -> bool:
        """Whether the user event `key` (events.records.Feedback.key_of) is new here; remembers it."""
        if key in self._user_events:
            return False
        self._user_events[key] = None
        if len(self._user_events) > self._size:
            self._user_events.popitem(last=False)
        return True

    def forget(self, user: str) -> None:
        """Keep no link to `user` in memory: their answers stay checkable, unattributed; their user events go."""
        for answer in self._answers.values():
            if answer.user == user:
                answer.user = None
        prefix = f"u:{user}:"
        for key in [key for key in self._user_events if key.startswith(prefix)]:
            del self._user_events[key]
