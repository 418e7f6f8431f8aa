"""A WSGI application: says hello and which Python serves it."""

import sys


def application(environ, start_response):
    body = "hello from WSGI on Python {}.{} at {}\n".format(
        sys.version_info[0], sys.version_info[1], environ.get("PATH_INFO", "/")).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
