"""PRISM's domain: instruments, orders, books, the matching engine and the synthetic participants (stdlib only:
no grpc, no gen/).

A servicer translates protobuf requests into ``MatchingEngine`` commands and the engine's event tuples back into
``PrismExecution`` / ``PrismFeedMessage`` messages; see ``engine.py`` for the rules and ``events.py`` for the events.
"""

from services.prism.domain.book import Book, BookReplica, BookSnapshot, TopOfBook
from services.prism.domain.engine import MAX_PRICE, MatchingEngine
from services.prism.domain.events import Event, EventView, decode
from services.prism.domain.fees import FeeSchedule
from services.prism.domain.instruments import DEFAULT_INSTRUMENTS, Instrument
from services.prism.domain.orders import OrderState, OrderType, OrderView, Side, TimeInForce
from services.prism.domain.participants import ParticipantKind, Simulation, SimulationConfig

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "MAX_PRICE",
    "Book",
    "BookReplica",
    "BookSnapshot",
    "Event",
    "EventView",
    "FeeSchedule",
    "Instrument",
    "MatchingEngine",
    "OrderState",
    "OrderType",
    "OrderView",
    "ParticipantKind",
    "Side",
    "Simulation",
    "SimulationConfig",
    "TimeInForce",
    "TopOfBook",
    "decode",
]
