"""The launcher: the `phr` command, the process runner, the development sandbox, the second
demo city and the demo loaders. The only package allowed to import every service; the kernel
(`phr_core`) and the services never import it (docs/architecture.md)."""
