from services.ptrc.bootstrap import build
from services.ptrc.settings import PtrcSettings
from services.runtime.server import run

run(PtrcSettings(), build)
