"""``pim-rollout plans …`` and ``pim-rollout tenants …``: the service driven over HTTP.

These commands are clients of the API and nothing else: they import nothing of the server
(an import-linter contract keeps it so), send the caller's token, print rich tables for
people or the API's own JSON for scripts, and exit with codes scripts can rely on
(:class:`app.ops.errors.ExitCode`).
"""
