from services.questdb_writer.bootstrap import build
from services.questdb_writer.settings import QuestdbWriterSettings
from services.runtime.server import run

run(QuestdbWriterSettings(), build)
