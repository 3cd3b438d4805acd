"""Whether a host or address is this machine: Fermion listens and talks to loopback by default."""

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8, ``::1`` and IPv4-mapped loopback (``::ffff:127.0.0.1``).

    The mapped form matters: a dual-stack socket reports an IPv4 client that way, and Python 3.11's
    ``ipaddress`` does not count it as loopback by itself.
    """
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
