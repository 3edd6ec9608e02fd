"""Member accounts and the OAuth 2.0 authorization server ([accounts])."""

import dataclasses
from typing import ClassVar

from .base import _Validated


@dataclasses.dataclass(frozen=True)
class AccountsConfig(_Validated):
    """Member accounts (sign-in pages, /account) and the OAuth 2.0 authorization server
    for calendar products (docs/linkapi.md, "Integrating as a calendar product")."""

    _key_prefix: ClassVar[str] = "accounts"

    enabled: bool = True
    session_ttl_seconds: float = 604800.0  # a signed-in browser, 7 days
    password_link_ttl_seconds: float = 259200.0  # the one-time set-password link, 3 days
    min_password_length: int = 10
    signin_failures_per_account: int = 5  # then refused for the rest of the window
    signin_failures_per_address: int = 20
    signin_window_seconds: float = 900.0
    code_ttl_seconds: float = 60.0  # authorization codes
    access_token_ttl_seconds: float = 3600.0
    refresh_token_ttl_seconds: float = 2592000.0  # 30 days

    def _validate(self) -> None:
        self._range("session_ttl_seconds", self.session_ttl_seconds, 60, 31_536_000, "60..1 year")
        self._range(
            "password_link_ttl_seconds", self.password_link_ttl_seconds, 60, 2_592_000, "60 s..30 d"
        )
        self._range("min_password_length", self.min_password_length, 8, 128, "8..128")
        self._range(
            "signin_failures_per_account", self.signin_failures_per_account, 1, 1000, "1..1000"
        )
        self._range(
            "signin_failures_per_address", self.signin_failures_per_address, 1, 100000, "1..100000"
        )
        self._range("signin_window_seconds", self.signin_window_seconds, 1, 86400, "1..86400")
        self._range("code_ttl_seconds", self.code_ttl_seconds, 1, 600, "1..600 (RFC 6749 4.1.2)")
        self._range(
            "access_token_ttl_seconds", self.access_token_ttl_seconds, 10, 86400, "10..86400"
        )
        self._range(
            "refresh_token_ttl_seconds", self.refresh_token_ttl_seconds, 60, 31_536_000, "60 s..1 y"
        )
