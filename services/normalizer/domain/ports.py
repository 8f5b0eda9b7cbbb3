"""What the normalizer domain needs from the outside world."""

from __future__ import annotations

from typing import Protocol

from services.normalizer.domain.model import PrismMessage


class PrismDecoder(Protocol):
    """Decodes PRISM's protobuf feed message (trade.prism.v1.PrismFeedMessage); raises MalformedMessage."""

    def __call__(self, payload: bytes) -> PrismMessage: ...
