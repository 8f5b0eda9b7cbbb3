from services.oms.bootstrap import build
from services.oms.settings import OmsSettings
from services.runtime.server import run

run(OmsSettings(), build)
