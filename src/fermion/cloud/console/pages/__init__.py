"""The console's pages, one module an area: login, products (the fleets), devices, team,
customers, OAuth clients, audit. Each reads from the store after the same standing checks the
API routes make, and makes every change as the REST call the CLI would make (``apicall``)."""

from fermion.cloud.console.pages import audit, clients, customers, devices, login, products, team

AREAS = (login, products, devices, team, customers, clients, audit)
