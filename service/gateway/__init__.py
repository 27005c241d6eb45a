"""The HTTP gateway: FastAPI app, routes, dependencies, middleware, metrics, `swintormer gateway`.

Only the gateway process imports this package; workers share the contract at `service`'s root.
"""
