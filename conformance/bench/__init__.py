"""`python -m conformance.bench`: echo servers on every implementation, under the same load
as asyncio, in the same run. See docs/performance.md."""
