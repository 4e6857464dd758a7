"""K3s keeps its admin client certificate across restarts and renews it only when it must."""

from __future__ import annotations

from sandbox.k3s import certs
from sandbox.k3s.versions import release


def test_a_certificate_is_renewed_only_near_expiry_or_from_another_ca() -> None:
    ca, ca_key = certs.new_ca("k3s-client-ca")
    other_ca, other_key = certs.new_ca("k3s-client-ca")

    def issued(days: float, signer: tuple[bytes, bytes] = (ca, ca_key)) -> bytes:
        return certs.client_cert(*signer, "system:admin", "system:masters", days=days)[0]

    assert certs.renewal_reason(None, ca, 90) == "missing"
    assert certs.renewal_reason(issued(365), ca, 90) is None
    assert certs.renewal_reason(issued(100), ca, 90) is None
    assert "within 120 days" in certs.renewal_reason(issued(100), ca, 120)
    assert "within 90 days" in certs.renewal_reason(issued(20), ca, 90)
    assert "within 90 days" in certs.renewal_reason(issued(-0.0005), ca, 90)  # expired 43 s ago
    assert certs.renewal_reason(issued(365, (other_ca, other_key)), ca, 90) == \
        "not signed by the current CA"


def test_the_renewal_window_grew_to_120_days_in_the_may_2025_releases() -> None:
    assert release("v1.31.4+k3s1").cert_renew_days == 90
    assert release("v1.32.5+k3s1").cert_renew_days == 120
    assert release("v1.33.1+k3s1").cert_renew_days == 120
