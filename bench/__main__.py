"""`python -m bench <scenario> [options]`."""
from gevent import monkey

monkey.patch_all()

from bench.run import main  # noqa: E402

main()
