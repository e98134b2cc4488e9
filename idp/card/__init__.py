"""Sign-in with the My Number card (JPKI): card sessions, verification, enrollment."""
