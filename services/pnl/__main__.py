from services.pnl.bootstrap import build
from services.pnl.settings import PnlSettings
from services.runtime.server import run

run(PnlSettings(), build)
