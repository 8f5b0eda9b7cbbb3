from services.risk.bootstrap import build
from services.risk.settings import RiskSettings
from services.runtime.server import run

run(RiskSettings(), build)
