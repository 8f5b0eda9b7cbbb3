from services.marketdata.bootstrap import build
from services.marketdata.settings import MarketDataSettings
from services.runtime.server import run

run(MarketDataSettings(), build)
