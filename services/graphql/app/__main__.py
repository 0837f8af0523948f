import sys

from app.settings import SettingsError, load_settings
from service_kit.server import run

try:
    load_settings()
except SettingsError as error:
    # Fail before uvicorn starts, with the setting named and no traceback.
    sys.stderr.write(f"invalid configuration: {error}\n")
    raise SystemExit(2) from None

run("app.main:app", "graphql")
