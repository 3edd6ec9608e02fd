"""Member accounts and the OAuth 2.0 authorization server for calendar products.

Modules: ``members`` (accounts, passwords, sessions), ``oauth`` (the authorization
server's rules), ``crypto`` (hashes, PKCE), ``pages`` / ``pages_http`` (the HTML pages),
``oauth_http`` (/oauth/*, metadata), ``api`` (/v1/users, /v1/me, member tokens on /v1),
``joining`` (signed-in members join straight in), ``setup`` (wiring into the app),
``openapi_paths`` (their part of the OpenAPI document).

This package module imports nothing, so that ``linkapi.openapi`` can import
``openapi_paths`` without a cycle.
"""

from __future__ import annotations

__all__: list[str] = []
