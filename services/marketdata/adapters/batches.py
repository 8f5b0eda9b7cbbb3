"""Wire bytes of batched stream messages, built by concatenation: each update is serialized once per batch
and the batch message is framed around the serialized updates (no copy of the update messages)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from trade.marketdata.v1 import marketdata_pb2

_LEN = 2  # protobuf wire type of length-delimited fields


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def repeated_in_oneof(oneof_field: int, items: Sequence[Message]) -> bytes:
    """`Response(<oneof_field>=Batch(<field 1>=items))` serialized: the layout of QuoteBatch/TradeBatch/
    BookDeltaBatch (repeated field 1) inside a stream response's oneof."""
    inner = b"".join(_field(1, item.SerializeToString()) for item in items)
    return _field(oneof_field, inner)


QUOTES_BATCH_FIELD = marketdata_pb2.StreamQuotesResponse.DESCRIPTOR.fields_by_name["batch"].number
TRADES_BATCH_FIELD = marketdata_pb2.StreamTradesResponse.DESCRIPTOR.fields_by_name["batch"].number


def encode_quotes(items: Sequence[Message]) -> bytes:
    return repeated_in_oneof(QUOTES_BATCH_FIELD, items)


def encode_trades(items: Sequence[Message]) -> bytes:
    return repeated_in_oneof(TRADES_BATCH_FIELD, items)
