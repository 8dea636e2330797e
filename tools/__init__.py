"""Developer tools for io-conformance: never installed, never run by CI."""
