from service_kit.server import run

run("app.main:app", "orders")
