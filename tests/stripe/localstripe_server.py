"""Starts localstripe (https://github.com/adrienverge/localstripe, pinned in
requirements.txt beside this file), the stand-in of Stripe's API that Kassa's Stripe
tests run against: `python localstripe_server.py --port PORT`.

One change to localstripe itself: it saves its whole state to
/tmp/localstripe.pickle after every write, a path shared by every instance on the
machine (the tests start one per test, in parallel, and other users' runs may own the
file). Each test's instance keeps its state in memory only, as a fresh one
(`--from-scratch`) would anyway.
"""

import sys

from localstripe import resources, server

resources.Store.dump_to_disk = lambda self: None

if __name__ == "__main__":
    sys.argv += ["--from-scratch"]
    server.start()
