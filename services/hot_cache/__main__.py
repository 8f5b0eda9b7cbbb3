from services.hot_cache.bootstrap import build
from services.hot_cache.settings import HotCacheSettings
from services.runtime.server import run

run(HotCacheSettings(), build)
