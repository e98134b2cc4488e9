"""A virtual My Number card in a virtual PC/SC reader, for development, tests and benchmarks:
the JPKI application's answers (`chip`) computed from a virtual card file (idp.card.vcard),
served to pcscd through vsmartcard's vpcd driver (`vicc`), and a private pcscd to run it in
(`stack`). The reader code (idp.card.reader) talks to it exactly as to a plastic card; nothing
there knows this package exists."""
