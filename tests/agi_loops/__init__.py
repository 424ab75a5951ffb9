"""The FastAGI server's tests, each run on every event loop `[server] event_loop` offers."""
