"""Entity statements, how they are fetched, and trust chains built from them."""
