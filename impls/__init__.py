"""Reference implementations of the five I/O models, one module each, behind one interface.

Each module ends with `make_server = <Server class>`: a `conformance.api.ServerFactory`.
pyproject.toml registers each under the name `--impl` accepts, as an entry point in the group
`conformance.impls` -- the same way a third party plugs in its own (`conformance._loading.
builtins`); `docs/models/` walks each file. Models join there once they pass the whole suite.
"""
