"""Load generation on Locust, with hey's interface.

Always runs in its own process: ``import locust`` monkey-patches the interpreter with gevent, so
nothing in ``rollouts`` or ``analyzer`` may import this package.
"""
