"""The consent service and the citizen portal (the information bank's front desk)."""
