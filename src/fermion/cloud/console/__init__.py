"""The web console: server-rendered pages for product teams, served by ``fermion serve``.

Same accounts, tokens and permission table as the REST API; see ``pages`` for how it reads and
``apicall`` for how every change goes through the API's own routes.
"""

from fermion.cloud.console.pages import install, router

__all__ = ["install", "router"]
