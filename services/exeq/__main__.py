from services.exeq.bootstrap import build
from services.exeq.settings import ExeqSettings
from services.runtime.server import run

run(ExeqSettings(), build)
