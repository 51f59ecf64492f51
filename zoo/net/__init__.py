"""Downloads: the HTTP transport, resumable partial files, mirrors and proxies, integrity checks, progress."""
