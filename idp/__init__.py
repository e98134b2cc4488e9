"""The OpenID Connect provider: card-verified sign-in and pairwise pseudonymous subjects."""
