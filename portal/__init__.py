"""The citizen portal's pages."""
