"""Reference implementations of the five I/O models, one module each, behind one interface.

Each module ends with `make_server = <Server class>`: a `conformance.api.ServerFactory`.
`BUILTINS` maps the names `--impl` accepts to those factories; `docs/models/` walks each file.
"""

BUILTINS: dict[str, str] = {
    "blocking": "impls.blocking:make_server",
    "select": "impls.select_:make_server",
    "epoll": "impls.epoll_et:make_server",
    "iocp": "impls.iocp:make_server",
    "trio": "impls.trio_:make_server",
}
"""--impl name -> "module:factory". Models join here once they pass the whole suite."""
