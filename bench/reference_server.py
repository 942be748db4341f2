"""Serve the reference SCIM server (scim2-server) under waitress, for the benchmark.

``scim2-server``'s own command serves with ``wsgiref``, one thread per request, which is not
its best configuration; this helper builds the same application (RFC 7643 schemas and
resource types, in-memory storage) and serves it with waitress instead. The endpoints are
at the root (``/Users``, ``/Groups``…); ``/v2/Users`` works as well.

Run it with ``python bench/reference_server.py --port 8081 [--threads 4] [--token T]``.
"""

from __future__ import annotations

import argparse
import secrets

import waitress
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import load_default_resource_types
from scim2_server.utils import load_default_schemas
from scim2_server.utils import load_default_service_provider_config


def build_app(tokens: list[str]) -> BearerTokenApplication:
    """Build the application the ``scim2-server`` command serves, with its defaults."""
    config = load_default_service_provider_config()
    if tokens:
        config.authentication_schemes = [
            *(config.authentication_schemes or []),
            BEARER_TOKEN_SCHEME,
        ]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    # A secret is only used for cursor pagination; the command draws one the same way.
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    return BearerTokenApplication(
        InMemoryStorage(), provider, service=service, bearer_tokens=tokens
    )


def main() -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--token", action="append", default=[], help="accepted bearer token")
    args = parser.parse_args()
    waitress.serve(build_app(args.token), host=args.host, port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
