"""The account pages' HTML: sign-in, set password, account, password change, consent,
messages. Plain pages like the join page (its stylesheet, no inline script or style);
every value is escaped; every form carries a CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

__all__ = [
    "SCOPE_TEXT",
    "AppRow",
    "account_page",
    "consent_page",
    "message_page",
    "password_page",
    "set_password_page",
    "signin_page",
]


def _page(title: str, body: str, *, script: str | None = None) -> str:
    js = f'<script src="/static/{script}" defer></script>' if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)}</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/style.css">
  {js}
</head>
<body>
  <main>
    <section class="card account">
      <h1>{escape(title)}</h1>
      {body}
    </section>
  </main>
</body>
</html>
"""


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def _error(message: str | None) -> str:
    return f'<p class="error" id="form-error" role="alert">{escape(message)}</p>' if message else ""


def message_page(title: str, message: str) -> str:
    return _page(title, f'<p id="message">{escape(message)}</p>')


def signin_page(csrf: str, next_path: str, *, email: str = "", error: str | None = None) -> str:
    return _page(
        "Sign in",
        f"""{_error(error)}
      <form method="post" action="/signin" id="signin-form">
        {_hidden("csrf", csrf)}{_hidden("next", next_path)}
        <p><label>Email <input type="email" name="email" id="email" required
           autocomplete="username" value="{escape(email)}"></label></p>
        <p><label>Password <input type="password" name="password" id="password" required
           autocomplete="current-password"></label></p>
        <p><button type="submit" class="primary" id="signin">Sign in</button></p>
      </form>""",
    )


def set_password_page(csrf: str, token: str, name: str, error: str | None = None) -> str:
    return _page(
        "Choose your password",
        f"""<p>Welcome, {escape(name)}.</p>{_error(error)}
      <form method="post" action="/password/set" id="set-password-form">
        {_hidden("csrf", csrf)}{_hidden("token", token)}
        <p><label>New password <input type="password" name="password" id="password"
           required autocomplete="new-password"></label></p>
        <p><label>Repeat it <input type="password" name="confirm" id="confirm" required
           autocomplete="new-password"></label></p>
        <p><button type="submit" class="primary" id="save">Save password</button></p>
      </form>""",
    )


def password_page(csrf: str, error: str | None = None, done: bool = False) -> str:
    ok = '<p id="message">Your password was changed.</p>' if done else ""
    return _page(
        "Change password",
        f"""{ok}{_error(error)}
      <form method="post" action="/account/password" id="password-form">
        {_hidden("csrf", csrf)}
        <p><label>Current password <input type="password" name="current" id="current"
           required autocomplete="current-password"></label></p>
        <p><label>New password <input type="password" name="password" id="password"
           required autocomplete="new-password"></label></p>
        <p><label>Repeat it <input type="password" name="confirm" id="confirm" required
           autocomplete="new-password"></label></p>
        <p><button type="submit" class="primary">Change password</button></p>
      </form>
      <p><a href="/account">Back to your account</a></p>""",
    )


@dataclass(frozen=True)
class AppRow:
    grant_id: str
    client_name: str
    scope: str
    connected_at: str


def account_page(
    csrf: str, name: str, email: str, tenant: str, room_url: str, host_url: str, apps: list[AppRow]
) -> str:
    rows = "".join(
        f"""<li class="connected-app" data-grant="{escape(a.grant_id)}">
          <strong>{escape(a.client_name)}</strong> may {escape(a.scope)}
          (connected {escape(a.connected_at)})
          <form method="post" action="/account/disconnect" class="inline">
            {_hidden("csrf", csrf)}{_hidden("grant", a.grant_id)}
            <button type="submit" class="danger disconnect">Disconnect</button>
          </form></li>"""
        for a in apps
    )
    apps_html = f'<ul id="apps">{rows}</ul>' if apps else '<p id="apps">No connected apps.</p>'
    return _page(
        "Your account",
        f"""<p id="who">{escape(name)} &lt;{escape(email)}&gt;, {escape(tenant)}</p>
      <h2>Your personal meeting room</h2>
      <p><input id="room-link" readonly size="48" value="{escape(room_url)}">
         <button type="button" id="copy-room">Copy link</button>
         <a href="{escape(host_url)}" id="start-room">Start meeting</a></p>
      <p id="copy-status" role="status"></p>
      <h2>Connected apps</h2>
      {apps_html}
      <p><a href="/account/password">Change password</a></p>
      <form method="post" action="/signout" id="signout-form">
        {_hidden("csrf", csrf)}
        <button type="submit" id="signout">Sign out</button>
      </form>""",
        script="account.js",
    )


SCOPE_TEXT = {
    "meetings:write": "create meeting links for you",
    "meetings:read": "see the meeting links it created for you",
}


def consent_page(
    csrf: str, client_name: str, scope: tuple[str, ...], fields: dict[str, str], member: str
) -> str:
    items = "".join(f"<li>{escape(SCOPE_TEXT[s])}</li>" for s in scope)
    hidden = "".join(_hidden(k, v) for k, v in fields.items())
    return _page(
        "Connect your account",
        f"""<p id="consent-text"><strong>{escape(client_name)}</strong> wants to create
      meeting links for you.</p>
      <p>Signed in as {escape(member)}. It asks to:</p>
      <ul id="scopes">{items}</ul>
      <form method="post" action="/oauth/authorize" id="consent-form">
        {_hidden("csrf", csrf)}{hidden}
        <button type="submit" name="decision" value="allow" class="primary" id="allow">
          Allow</button>
        <button type="submit" name="decision" value="deny" id="deny">Deny</button>
      </form>""",
    )
