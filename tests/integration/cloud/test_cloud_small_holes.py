"""The small holes of issue #10 (finding 13), over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from cloud_harness import Cloud


def test_a_product_the_caller_has_no_standing_in_is_not_found(cloud: Cloud) -> None:
    owner, token = cloud.user_token()
    product = cloud.product(owner)
    with cloud.http(token) as h:
        slug = h.get(f"/v1/products/{product}").json()["product"]["slug"]
    _, outsider = cloud.user_token()
    with cloud.http(outsider) as h:
        unknown = h.get("/v1/products/no-such-product-here")
        assert unknown.status_code == 404, unknown.text
        for ref in (slug, str(product)):
            for path in ("", "/devices", "/customers", "/team", "/clients", "/devices/" + "0" * 24):
                reply = h.get(f"/v1/products/{ref}{path}")
                assert reply.status_code == 404, (path, reply.text)
                # The same answer as for a product that does not exist, but for the name.
                assert reply.json() == {
                    k: v.replace("no-such-product-here", ref) if isinstance(v, str) else v
                    for k, v in unknown.json().items()
                }, path
