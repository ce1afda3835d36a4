"""How many event streams may be open: per token, and in all. A stream holds a connection, a subscription
and its queue for as long as the console stays, so a leaking console (or a hostile client) could otherwise
take the server's memory and sockets. Over a limit, a new stream is refused with Retry-After."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from dispatch.problems import TooMany, Unavailable

RETRY_AFTER_S = 5


class StreamSlots:
    """Counts open streams; `hold` takes a slot for one stream's life."""

    def __init__(self, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self._by_token: Counter[int] = Counter()
        self._open = 0

    @contextlib.contextmanager
    def hold(self, token_id: int) -> Iterator[None]:
        """A slot for a stream of `token_id`; TooMany (429) or Unavailable (503) when none is left."""
        if self._by_token[token_id] >= self.per_token:
            raise TooMany(
                f"this token has {self.per_token} event streams open, the most one token may "
                "(OUTPOST_STREAM_MAX_PER_TOKEN); close one first",
                retry_after_s=RETRY_AFTER_S,
            )
        if self._open >= self.total:
            raise Unavailable(
                f"{self.total} event streams are open, the most this server keeps (OUTPOST_STREAM_MAX_TOTAL)",
                retry_after_s=RETRY_AFTER_S,
            )
        self._by_token[token_id] += 1
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
            self._by_token[token_id] -= 1
            if not self._by_token[token_id]:
                del self._by_token[token_id]
