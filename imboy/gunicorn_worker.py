"""The gunicorn worker class named in gunicorn.conf.py."""
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker

from .ws.handler import ImboyWebSocketHandler


class ImboyWorker(GeventWebSocketWorker):
    wsgi_handler = ImboyWebSocketHandler
