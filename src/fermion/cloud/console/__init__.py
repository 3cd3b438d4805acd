"""The web console: server-rendered pages for product teams and device owners, served by
``fermion serve``.

Same accounts, tokens and permission table as the REST API. ``web`` holds what every page
shares (templates, headers, errors as pages, forms), ``pages/`` one module an area, ``apicall``
how every change goes through the API's own routes, ``session`` the login cookie and CSRF.
"""

from fermion.cloud.console.mount import install

__all__ = ["install"]
