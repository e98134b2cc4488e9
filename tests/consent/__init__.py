"""Tests of the consent service: records, APIs, cache, linkage, guardianship, receipts."""
