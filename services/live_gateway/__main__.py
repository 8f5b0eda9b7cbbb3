from services.live_gateway.bootstrap import build
from services.live_gateway.settings import LiveGatewaySettings
from services.runtime.server import run

run(LiveGatewaySettings(), build)
