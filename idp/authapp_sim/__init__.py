"""Development stand-in of the Digital Agency's authentication app service (refused in
production)."""
