from services.normalizer.bootstrap import build
from services.normalizer.settings import NormalizerSettings
from services.runtime.server import run

run(NormalizerSettings(), build)
