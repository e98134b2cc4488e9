"""A real My Number card on any PC/SC reader: the JPKI application's APDUs (`apdu`, with the
public sources they were read from), the card session over any transport (`jpki`), pyscard's
PC/SC transport (`pcsc`), every reader and card answer as a ja/en message (`errors`), and the
glue for `phr card sign --reader` and `phr card readers` (`session`)."""
