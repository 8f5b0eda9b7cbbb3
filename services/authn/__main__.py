from services.authn.bootstrap import build
from services.authn.settings import AuthnSettings
from services.runtime.server import run

run(AuthnSettings(), build)
