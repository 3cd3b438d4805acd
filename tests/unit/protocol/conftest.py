"""Fixed keys and randomness for the protocol tests.

The keys were generated once with ``cryptography`` and pasted here so every known-answer test
sees the same bytes on every run. They protect nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SERVER_KEY_PEM = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA3GhHy0vHWVRY9S9jTvLDL5mW7uCousBO6l67ai/O6JJFQ3Co
o8kIrX6r1FHFkjQoxRnMnFqjGW0Xv6zU5ROA5h/NjlQL25mt8nd2BUGaCoaWE5xt
0/q6B0D0ewU01BYppxgxBNBCr6pNslsPdCw7hFcswk4WOtz5Lz6+puMKF3B1zVBL
tgB1gJ1yh/FQpmiPO7AVk+6/ijSJ/Cy3gX1VzrD7Wv8iP6ZPD2gBcZUUhYfIBlit
qnRydCndf73Ci00hqSyypHcWuf8BkqrREgRREbTya+Cs1z3se1N/ZQugAeJoK0tJ
ngUG2sfWCJKTQAuG0PmVE6qaOumtqzgH/XW7zwIDAQABAoIBABpnxd4ltHrPv56U
ME4XiGnN+UaiFKTXAD1U3xggJSY4y+KB/zosDgWXDOfxaf2TkSTX6+r5ctvLdZJp
ltHg7crkGYDJMeh7t1q6lCGaE+XZ7OXpkkDYo2vWDNQmMgeMpi3WGJ1OhAa+nPNW
tHnDCNhYh0y6BTDFI3dVCYs93QoknohFfqP+2L1xrLjnNKi6I70Xd/2nEFdYryz9
nQrlzvU9I4bSIKdMszI8J+s5DaaT5frgUGODQ8THMjOPguGVnrGgfMO9dre9sQqM
KTXGv9Z3LU5wLB5zbDOG61ZfoNQh1V2haT1pECPrgCoB+U85W2MhHsyi4Un8OgP1
rdAsdHECgYEA+AEM39MadWsr1CtrLCNutTUoKW1nTK3knX+GJHtcqL7X6caNxU7C
6IGi2FxDmpieYQTUBhUwosRYVMiebjs2dAi1s07MSnUvZwXHR3JwZItgRokamvkJ
IIrYJYReRAavNcKBSsUV5BGy40efBI7LAjKfoDL0Qim6JnFT0XkCIPECgYEA44N0
epdzSZUxpEbYB1UGhRj+u7YjFwfnkeuQc1j7fpTj8z3z0UM0eUFIeRm4i6iNog+1
SwGTEL/Hp8NwspZ3ihARD4gypiWHeMN2oLGPmZpEs8nyDWnSC/YeXYlDf/Pf9LBV
C3SENJJ60hETAteS9O2AFzgSePhfYFrIpxNRqL8CgYAUcim4jjPhOEutu0Kjqewn
nlFIUQ+yH6f4YBoUCeOSueEdEdSATsT83CsrwTeFmE1+XCKKudZ/pMZPfxaoqdMM
b+di9/0Zql2VFcHfHw0rDN6MEiOSYTOibi/xr98BprdtLDLykhsC6X6hBDeU7ZzI
+pl0YJ8IkV4aaz9oxpwpUQKBgQCsKBGgni+Ps4Rf0XewfKc1WceP1O/Sgpm48i5Z
CjEsBJBExFFVvOvdAQhNEqhxjXa29fnyKtvU5bm3eY0ypecIosW2IhJpZKaRPB7s
089cpL5t6VbuzW8yu+cYUkCwdqK17iQ8ScusWFb11BO1p9g82+Z8K2LXBOJu7+M7
gcPd0wKBgQDPUFcd1ff6gA/19nHw/ihf7ddt3+/V+1DPP1pXPFIFq11r3lcw0wuD
xpiCNIJEBLK2HuFpgU8DbLurpavY4fzuUR91bklXTOmEXIFue2ReVmUsHMsaFNyr
k3I+3TEhKZvrGdFFfAbCwPyKAYyXEQEY2ckPY1XMr5ikStXRadm/6Q==
-----END RSA PRIVATE KEY-----
"""

PREVIOUS_SERVER_KEY_PEM = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAtTQ2f0dkBiZt1eCSOz7HxnXo6FGv/EwI2Alz5zTXhbD5JaYJ
FPvteLAA9q8vzys+/zrNK30CU1tHU3+r4MQqqzzEIsOsNnglN+xitPAsLoRGMo9r
JkJHRtCCOGVUR5AmRCe8nUnwUR3XjyiHzkPf1g9JeZNpCcpCAc4VifNel/CqkQM3
tXEuayUPBEfBPJs0TeV3/L2o2bRQVz6veWA7nn6J73+ScWyszNXglTFtg9QEvQ1p
lbvd5OEVmjy8hJOcFLb1x2iFYxjNg90adI0gjUIQKSh7dRG9hg+pHk2jFQ3mx92R
lcLh777ggFf7hjz00PGpNZ3nRcg9J0xpFcMOgQIDAQABAoIBACsgiC/239mO3+ld
j7BGGuojOhHBD2+u8RPp/An1S65oFoRdZh/2beihizkrLOfT1SSN7DMDh8ArI2i+
JDxUtAsZZV0Y0S4Nnl4XBs8lsn5HwSVbeRccAzbZfYTKqSp3JoRmKMAOzwGfZqSN
8vSmtumNreEfsoo/90HSuNGieMsUeA2eWVfStFKxGA5s8wF5LOQeQ+JY4FaquiSs
EZ1u6l8vG913W4F5xoEBo007ntq9CTC9vyC1oWeBcmvc4DKi8DrZ9LnQHeIz7NEk
twCRcEbmzHGF6jFFENY+0mOxYdhV0AeoH72dV+pSf2c/m3cFjbYRggSoa7zUx0uV
BGUKjBkCgYEA3ybXtDk0WijAZ+JlSaXFIvB3oQVVcqHsPIRyZMiDQFrl5MW1x4hi
q2YWTtMsVtmcriQs4A5j/J9gBQcep00F2h0jE726h17jcd+rgy3ze4xHOzz0c0M4
hvdr4K4LgktbSRAAikOUJPg9TIpKl8Mmw9ga1XuetGBvjT3IETZYKUsCgYEAz+Cg
twRtNdtufO162U0sr7CvuAkWTYfsCj+bxakTNg0ucKJdwCFP/PUKiTWMOfp5cswZ
4lhLAsRTLU7BUbiRrrPTC27+6QDdCvDQdc5r8ExT5VzRqTaeyIo/MpXQREaqw9Yg
EQqbXOT0EzoMbRLuuVUGF94yAUb1bFH1yS7Fs+MCgYBRdeiATfGiiAXU5nx7KhyQ
6J+DFGNg+WM3pFHuIJRpRcVugg4dzNfYIeg61jP1cHMVzvbiw94UNknjC/pQsHlW
ahSH/Fa/XBBDXZdKx9d+XnMSWOoTuZJFEsU6u85PvhqQzVqlHo5SAJy/+CvKwt6/
13/UNtB0oE+Yi9khD2mXiQKBgCPiQbv2DqgaXeNA11EFim41kM+y+d+eU/ec7VXc
js1ozxhwXsCYv4cKAayXysIDY82WP+2bki9DFpyemK5zruo6bnbtzSEJnh6SXVnI
rUdI1b6lHCganqQ9gRVJWS9AB6BQqS5n51PMzfk3rwdxGjZx3+Bk4brotdrh9wyo
f0ZDAoGAIcY/g7IVNHvyayP+oiZrBWAw1sJtAw5AMGrh5yoK5rRfTTixXOCwDWjY
rvztlsLCnVgJhHhFqcAEzyIRBmlf5tX6gMiIxOf7DPn1FB3CbGtO9G1jTBV7XPbQ
O1CWxghGrfamiH4uXYOPLM4MshFh4UfW1goA6yGzoo0AD3B9dKU=
-----END RSA PRIVATE KEY-----
"""

OTHER_CLOUD_KEY_PEM = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAzA2Z1VL3ujgvptsScUWZzL5tQz00av0h+nDGiVYq9wROMiTH
qBSFU6bCsopuMXZEuJKz8jnsWmqZDMtn1bbWG0ju3QrHhUuTlvftI+A/jKaSK7Eo
rMa2XKradljO9wMlW4kaKewbB1Fd2Y0V9iDxH2iZn8Ioz4Q2tvNMtRIr60WZNL15
FqpqLETiSHWGkCNKxKv2UNPmj1FVOs9SCiw07QsoVsEMFVbUVI+ONATGARbmIzvf
uTV2hHGDomi0mJjLnkFnZ0DeQJRm7thrir8BCu09jYxN+JyJrJ91auY6rx5y/SYA
eAO17m+m9j+1nh6e/l96klrXt3alnxEDmHG5GQIDAQABAoIBAAEQmRrp4e0Q2f7O
6du5d0IARGWzbhCY3ZKHACI7VuIPHbFZS8luwftbxWxVGJodeeJUsaez8a3PHJla
fmI5IAjoaoawxbXGXTDOfmhPhUVgoSalOAceyljVc2pmsD3NwGYn4wERAFsba5f1
CoZMSbXWP+b7hmb+06JExsOzIpOJuQ30jU7EvlNeqq6TUDiFraUyqHjlQjwAriJB
in4CAdIhhF0RRcbvPsTYzUDBF4fLjASFvm/ir5ZC0slp0Zda8mmoU3MkFp8VN4B7
pPmgLNqEd87MwXiyFg3o2Bn1Gygh5KHZCzrgLFnaZzuGqxAe6JWpGGBjSU/QVp1N
ohtbI3kCgYEA7B8WXGiRx4NZ9XOn6crSqD6jRFJ94arhUC0NVtkfcfUKSPwCyagD
nJxQr7NMhfoN3U2+4kMScfftFpu+HLzcbLvC+vxnyCUDvG4jQhzPedNqZzTVR92R
4+eX6rk+TP7u6h1yMDa/cFdCY89hnL24LYmzw+0hmTAH0o7t9ioFBEcCgYEA3Ttf
zdf53/SGlRIv0snhudIoYXxKsZvksIRFKfBNQ50taiUe7+7OMyjY/kYTW87WRimA
w1pZTrGjFIV28M3b+6ARziBXBMNb1KVGyKp0aMG/+VPNRuP7HYn4kBUOZIb6kI2b
DbH+fPZs0uyOT62FWpLaGFegxHE9GbGivtfI558CgYBCI08LIUs8HEG1a+jrpqEs
+SaYO5cA//FOmN/0pKqXK/DukpBhVct1MZ+0Jz/XAzyg8Wb3T5w6Ch0BySwONqRz
XIB39v1G5X9PZ3Y+zX0b/aj/MaBQGfMEaFl4KN0Xigz3zLmwYZVr7TUuaedIlSei
scCFr8VKeFaoltp2qjxvfwKBgHUbD8yDbcaJxo+0T9JRgQX+49culs9LSRPTAFWB
2TRYSAju22CAVXApSCvY5jhr1WrQX1OJSMrqJvwe5eXz4mVgxuwInGduDfcTAdQI
vpQRM1CEdp324h8xwHxsWPEHrizEeHYYaTC2tMY15+LvZC6cm4vVHsm9c21dZVuG
F9fbAoGBAL7AFAzJaikP+pBL8uFUgkDq4lPR34D8Q6C7DVx5ZBDbRiUIN8st3twb
jG2dHhIkaOutTDBGfThXHkraWEhe/Ko9nLsuFLkBihqWnfgyscQtBN37yacM3SbD
mHF2zH/xNv3kB7rGjJBmX+fNDmh2Cmm+v2LhFLZo2Uv/KcDYnPJ9
-----END RSA PRIVATE KEY-----
"""

DEVICE_KEY_PEM = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIICWwIBAAKBgQDW28g27ttOrYjCkkmHjz2rn71esUWKSlCoDdEMeXO5vjwxMfd/
DWyVF0Wwb6LtZqsX3am2ruGUK7xYMrXw3iW2CndBir9pjQaaFyV90GuaTp02cKUW
3Af8uFrU67rw/3WERnITZ0idMcushdQW3okXt7a7E5WsnC8YRYyaHBCmOwIDAQAB
AoGACbRDhrejEBqmYqNYztaZYncEhpJbIbPZkL2PA5E4uNruvQoUs5hXnyQ98YoZ
Qb+xWpKYZ7feWGLhTtp7fTWLXmhBdnvj5oOchCw68tLxqO8RzliEK8ceY2W8iHj4
JsTzYiU3tGcbQzc19ex7ZJvdC8/kFtP+y5Vkz1hT3thhvoECQQD486v4wCaoqyxk
RlT1io5WpbkTCY2ugeXV8Efmf2eVItKnqBWnVtdSF+rIK7SjGX7Mb7BUrGY+bOq4
2t83sb5XAkEA3PEDHj61GK3IRaD4mtZVPv6h1cdyD5XJCSsNPIeq4HNKefVwtOcx
mFXoRonYnChcTCaiQ0SkGetIFstmzi3gvQJAcNPOzvAXFT5u4gtWGepv1ClLlasw
wTQx/CHoFDkNsvOTUVTGa47aC2S3jXzxYzH8256K5fU0aXpnbtwTamRuBQJAWHHW
mLXrkuyGXnE48+rXBzexmz2TCHAioRvt2YxJuD4O01GQg6qFLQE+0XX/E0wI3qcc
j6cbthB8tDtKdUDiVQJAaSBAUxHNxZq8g1K9i+0fwuhDjzpCSZwspIsTwu51pKT5
zADMZxI7lkJjRWXHhFSrkEj0pZC0AjSgWVH0oQK7dw==
-----END RSA PRIVATE KEY-----
"""

OTHER_DEVICE_KEY_PEM = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDZMbqDBw/FpHDRA8EcpQLGcN85nM+H86amRks94Mpi/27/8jsS
78/yeiLWfaFYIGsO0Ya/ZgGGZJ/T5u4h2dCP0YEfp4O5m1uG+qCqGj1fD18+f8BW
tR+WzCHcdekn2vUWQGS6x9nFmC5ZezDT8fceSDtFHYg7tP7kcN+gzfeKowIDAQAB
AoGADD+xtRIA4bSUaDU9/s+PiIF1FVqymYg0LcxpEeRLhanCKM0QZ9D+eT5KGK6d
Gss5PmyynLiz/VBPczPi2iXejSM5H+wgyvOevvwmKJnNfMaA8UqDg5xSRkBs0rwK
gIGAgLBSkb8tmyQaEFd7LqMYD/1qKufOsvfsWrzHwZ7/sgECQQDxK9ANIYwEUr0J
Ujuae5Rvn2bU1IE7+UiVStibgIchhM0xD3IrUz8k1RahUbba6TTtWiu26ajb48Up
vhYX4mpxAkEA5oyBG/8OQQeAC4wpyrHSGuuhrem/UfRB1jYagwziYu1c82bfNYFg
pxMimwNC45yostVw0FgCUfMKsnTE+rOIUwJBANBSChrtmWa6mXONxtKAYQ2yYT8C
eMd3Y00iI8zeztsTPbNdJj9qXybPsgaS8SJTQ1arBwuu9h9KtiqCec8T0uECQQDO
62QlgHGGo/ikZJRNu/Na/gkKUjTIlXVRkRWScUnuiCNYwgerugbJbT8t6WtrZftz
JmYuWA8dBgmfyXXRnLjJAkAv57dF9e3Hb/G+yPC29yZyQukaTgZ9rNvtnSAy0JUS
V10E/qvUK1tJNsEWIvVHmdDxxTtZfrZwC2N0RtCFJjYe
-----END RSA PRIVATE KEY-----
"""


def load(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


class Script:
    """A random source that hands out scripted byte strings, in order, then fails loudly."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def __call__(self, size: int) -> bytes:
        assert self.chunks, f"unexpected request for {size} random bytes"
        chunk = self.chunks.pop(0)
        assert len(chunk) == size, f"scripted {len(chunk)} bytes, asked for {size}"
        return chunk


@pytest.fixture(scope="session")
def server_key() -> rsa.RSAPrivateKey:
    return load(SERVER_KEY_PEM)


@pytest.fixture(scope="session")
def previous_server_key() -> rsa.RSAPrivateKey:
    return load(PREVIOUS_SERVER_KEY_PEM)


@pytest.fixture(scope="session")
def other_cloud_key() -> rsa.RSAPrivateKey:
    return load(OTHER_CLOUD_KEY_PEM)


@pytest.fixture(scope="session")
def device_key() -> rsa.RSAPrivateKey:
    return load(DEVICE_KEY_PEM)


@pytest.fixture(scope="session")
def other_device_key() -> rsa.RSAPrivateKey:
    return load(OTHER_DEVICE_KEY_PEM)


@pytest.fixture
def script() -> Callable[..., Script]:
    return Script
