"""Entry point: `python wsgi.py` serves imboy; gunicorn imports `app`."""
from gevent import monkey

monkey.patch_all()

from imboy import create_app  # noqa: E402

app = create_app()

if __name__ == "__main__":
    from imboy.server import serve

    serve(app)
