"""Shared plumbing of the PHR platform: configuration, databases, migrations, health checks,
the process runner and the `phr` command line. Service logic lives in the four service packages."""
