from services.runtime.server import run
from services.sink_ticks.bootstrap import build
from services.sink_ticks.settings import SinkTicksSettings

run(SinkTicksSettings(), build)
