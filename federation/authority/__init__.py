"""The federation authority: a trust anchor (the national body) or an intermediate (a
prefecture), serving the fetch, list, resolve and trust-mark endpoints (section 8)."""
