"""PHR_CARD_VERIFIER=app: this IdP as relying party of the Digital Agency's authentication app
(デジタル認証アプリ). client.py speaks OpenID Connect (Authlib), broker.py maps the upstream
result to our own person, views.py is the browser side (/login/app, /login/app/callback)."""
