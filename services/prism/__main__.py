from services.prism.bootstrap import build
from services.prism.settings import PrismSettings
from services.runtime.server import run

run(PrismSettings(), build)
