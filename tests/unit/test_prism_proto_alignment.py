"""The PRISM domain speaks the contracts' vocabulary: its enums and reject reasons map 1:1 onto the protobuf enums.

(The domain itself imports no generated code; this test is where the two are held together.)
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import pytest
from trade.prism.v1 import prism_pb2
from trade.type.v1 import errors_pb2, order_pb2

from services.prism.domain import OrderType, ParticipantKind, Side, TimeInForce
from services.prism.domain import orders as o


@pytest.mark.parametrize(
    ("domain", "proto", "prefix"),
    [
        (Side, order_pb2.Side, "SIDE_"),
        (OrderType, order_pb2.OrderType, "ORDER_TYPE_"),
        (TimeInForce, order_pb2.TimeInForce, "TIME_IN_FORCE_"),
        (ParticipantKind, prism_pb2.ParticipantKind, "PARTICIPANT_KIND_"),
    ],
)
def test_domain_enums_have_the_proto_enum_numbers(domain: type[IntEnum], proto: Any, prefix: str) -> None:
    for member in domain:
        assert proto.Value(prefix + member.name) == member.value


def test_every_reject_reason_is_an_error_reason_of_the_contracts() -> None:
    rejects = [
        o.UNKNOWN_SYMBOL,
        o.VALIDATION_FAILED,
        o.INVALID_TICK_SIZE,
        o.INVALID_LOT_SIZE,
        o.BELOW_MIN_NOTIONAL,
        o.POST_ONLY_WOULD_TAKE,
        o.EXPIRE_TIME_IN_PAST,
        o.ORDER_NOT_FOUND,
        o.TOO_LATE_TO_CANCEL,
        o.TOO_LATE_TO_AMEND,
        o.NO_LIQUIDITY,
    ]
    for reason in rejects:
        assert errors_pb2.ErrorReason.Value("ERROR_REASON_" + reason) > 0
