"""The one sending loop every backend shares (the django-anymail shape).

A backend subclass says how to split a batch into groups (`group`) and how to send one group
(`send_group`, which builds its request through a separate, I/O-free payload step where the
provider has one). The loop turns `SendError`s into per-message `SendResult`s so one bad group
never stops the batch, except a server-level one (`SendError.server`: the backend is unwell),
after which the rest is reported "not attempted" at once; `ConfigurationError` is not a
`SendError` and always propagates.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from drip.config import Settings
from drip.errors import SendError
from delivery.types import OutgoingMessage, SendResult


class BaseBackend:
    name = "base"
    uses_shared_content = False  # True: messages carry `shared` + `substitutions` instead of html/text
    # True: one provider request per group of up to 1,000 (SendGrid): a claim fills a request and is
    # recorded per request. False: one message at a time, recorded every `record_every` messages.
    sends_groups = False
    # The dispatcher may set `keep_going` for one `send_batch`: called with each group's results,
    # False stops the batch there (the rest is left out of the results: not attempted). This is how
    # an auto-pause lands on the exact failure that trips it. Backends whose loop honours it say so.
    early_stop = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keep_going: Callable[[list[SendResult]], bool] | None = None

    # -- lifecycle: backends that hold a connection open it lazily and reuse it
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "BaseBackend":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        down: SendError | None = None  # a server-level failure: the rest of the batch is not tried
        for group in self.group(messages):
            if down is not None:
                results.extend(
                    SendResult(m.delivery_id, ok=False, error=f"not attempted: {down}", transient=True,
                               retry_after=down.retry_after, server=True)
                    for m in group
                )
                continue
            try:
                group_results = self.send_group(group)
            except SendError as exc:
                if exc.server:
                    down = exc
                group_results = [
                    SendResult(
                        delivery_id=m.delivery_id,
                        ok=False,
                        error=str(exc),
                        transient=exc.transient,
                        retry_after=exc.retry_after,
                        server=exc.server,
                        bounce=exc.bounce,
                    )
                    for m in group
                ]
            results.extend(group_results)
            if self.keep_going is not None and not self.keep_going(group_results):
                break
        return results

    def group(self, messages: Sequence[OutgoingMessage]) -> Iterable[Sequence[OutgoingMessage]]:
        """Default: one message per group."""
        for m in messages:
            yield [m]

    def send_group(self, group: Sequence[OutgoingMessage]) -> list[SendResult]:
        raise NotImplementedError
