"""Development stand-in for the card authority (J-LIS): CAs, OCSP, CRL, renewal links.

Never enabled in production mode. Initialise with `idp.authority_sim.ca.init_authority(settings)`
and serve with `idp.authority_sim.app:create_app()`.
"""
