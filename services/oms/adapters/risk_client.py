"""risk.CheckOrder over gRPC with a tight deadline; no verdict in time means the order fails closed."""

from __future__ import annotations

import grpc
from trade.risk.v1 import risk_pb2, risk_pb2_grpc

from services.oms.adapters.codec import reason_name, spec_to_pb
from services.oms.domain.model import OrderSpec, RiskVerdict
from services.runtime.clients import insecure_channel
from services.runtime.errors import DomainError, ErrorKind


class GrpcRiskCheck:
    def __init__(self, target: str, deadline_s: float = 0.3) -> None:
        self.deadline_s = deadline_s
        self._channel = insecure_channel(target, default_deadline_s=deadline_s)
        self._stub = risk_pb2_grpc.RiskServiceStub(self._channel)

    async def check(
        self,
        account_id: str,
        symbol: str,
        spec: OrderSpec,
        client_order_id: str,
        amend_order_id: str,
        strategy_id: str,
    ) -> RiskVerdict:
        request = risk_pb2.CheckOrderRequest(
            account_id=account_id,
            symbol=symbol,
            spec=spec_to_pb(spec),
            client_order_id=client_order_id,
            amend_order_id=amend_order_id,
            strategy_id=strategy_id,
        )
        try:
            response: risk_pb2.CheckOrderResponse = await self._stub.CheckOrder(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise DomainError(
                "RISK_CHECK_UNAVAILABLE",
                f"pre-trade risk check failed: {exc.code().name}",
                ErrorKind.UNAVAILABLE,
                metadata={"grpc_code": exc.code().name},
            ) from exc
        if response.approved:
            return RiskVerdict(True, response.check_id)
        first = response.violations[0] if response.violations else None
        reason = (reason_name(first.reason) if first else "") or "RISK_INSTRUMENT_DISABLED"
        message = "; ".join(v.message for v in response.violations) or "rejected by risk"
        return RiskVerdict(False, response.check_id, reason, message)

    async def close(self) -> None:
        await self._channel.close()
