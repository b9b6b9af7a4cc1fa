"""A minimal OpenID Connect provider for the single sign-on browser test: discovery, an authorization
endpoint that signs in whoever the test names (no login form), the token endpoint issuing an RS256 ID
token bound to the request's nonce, and the JWKS to verify it. Streamlit (through Authlib) talks to it
exactly as to a real provider: it fetches the discovery document, redirects the browser, exchanges
the code with the client secret and checks the ID token's signature, issuer, audience, expiry and nonce.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "auditloop-test"
CLIENT_SECRET = secrets.token_urlsafe(24)


@dataclass
class Grant:
    claims: dict[str, Any]
    nonce: str | None
    redirect_uri: str


@dataclass
class OIDCProvider:
    """Run with ``with OIDCProvider() as idp``; set ``idp.claims`` to who the next sign-in is."""

    claims: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "test-1", "alg": "RS256"}))
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def __enter__(self) -> OIDCProvider:
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    self._authorize(query)
                else:
                    self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                if urllib.parse.urlsplit(self.path).path != "/token":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                answer, status = provider.token(form, self.headers.get("Authorization"))
                self._json(answer, status)

            def _authorize(self, query: dict[str, str]) -> None:
                if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                    self.send_error(400, "bad authorization request")
                    return
                code = secrets.token_urlsafe(16)
                provider.grants[code] = Grant(dict(provider.claims), query.get("nonce"), query["redirect_uri"])
                target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            def _json(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
        }

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[dict[str, Any], int]:
        self.token_requests += 1
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = (urllib.parse.unquote(p) for p in decoded.partition(":"))
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return {"error": "invalid_client"}, 401
        grant = self.grants.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return {"error": "invalid_grant"}, 400
        if form.get("redirect_uri") != grant.redirect_uri:
            return {"error": "invalid_grant", "error_description": "redirect_uri differs"}, 400
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, **grant.claims}
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, self.key)
        return {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }, 200

    def secrets_toml(self, app_url: str) -> str:
        """The ``[auth]`` section Streamlit needs to use this provider for the app at ``app_url``."""
        return "\n".join(
            [
                "[auth]",
                f'redirect_uri = "{app_url}/oauth2callback"',
                f'cookie_secret = "{secrets.token_urlsafe(32)}"',
                f'client_id = "{CLIENT_ID}"',
                f'client_secret = "{CLIENT_SECRET}"',
                f'server_metadata_url = "{self.metadata_url}"',
                "",
            ]
        )
