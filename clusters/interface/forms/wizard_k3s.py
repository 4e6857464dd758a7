"""Wizard page 5: the K3s release or channel and where it is installed from."""

from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from clusters.adapters import wizard_checks
from clusters.core.errors import PermanentError
from clusters.interface.forms.common import DNS_NAME, WizardForm
from clusters.k3s.versions import is_channel, parse_version
from clusters.models import InstallSource


class K3sStepForm(WizardForm):
    version = forms.CharField(
        label=_("Version or channel"), initial="stable", max_length=64,
        help_text=_("A channel (stable, latest, v1.36) is resolved to its current release "
                    "when the create starts, and every node, also one added later, installs "
                    "that release; a version (v1.36.4+k3s1) is used as given."))
    install_source = forms.ChoiceField(label=_("Install from"), choices=InstallSource.choices,
                                       initial=InstallSource.OFFICIAL, widget=forms.RadioSelect)
    install_base_url = forms.URLField(
        label=_("Custom base URL"), required=False, assume_scheme="https",
        help_text=_("Serves the official layout: the install script at /, "
                    "/k3s-io/k3s/releases/download/… and /v1-release/channels."))
    extra_tls_sans = forms.CharField(
        label=_("Extra TLS SANs"), required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=_("One DNS name or IP per line. The SLB address is added for you."))
    disable_traefik = forms.BooleanField(label=_("Disable Traefik"), required=False)
    taint_servers = forms.BooleanField(
        label=_("Taint servers (run workloads on agents only)"), required=False)
    secrets_encryption = forms.BooleanField(
        label=_("Encrypt Secrets at rest"), required=False, initial=True,
        help_text=_("K3s --secrets-encryption: Secrets are stored AES-CBC encrypted in the "
                    "datastore, not as plain base64. Set once, when the cluster is created."))

    def clean_install_base_url(self) -> str:
        url = self.cleaned_data.get("install_base_url") or ""
        if url and not url.startswith(("http://", "https://")):
            raise ValidationError(_("Use an http:// or https:// URL."))
        return url

    def clean_extra_tls_sans(self) -> list[str]:
        sans: list[str] = []
        bad: list[str] = []
        for line in (self.cleaned_data.get("extra_tls_sans") or "").replace(",", "\n")\
                .splitlines():
            value = line.strip()
            if not value:
                continue
            try:
                sans.append(str(ipaddress.ip_address(value)))
                continue
            except ValueError:
                pass
            if DNS_NAME.match(value):
                sans.append(value.lower())
            else:
                bad.append(value)
        if bad:
            raise ValidationError(ngettext(
                "%(values)s is neither an IP address nor a DNS name.",
                "%(values)s are neither IP addresses nor DNS names.", len(bad))
                % {"values": ", ".join(bad)})
        return list(dict.fromkeys(sans))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        source: str = data.get("install_source") or ""
        base_url = data.get("install_base_url") or ""
        if source == InstallSource.CUSTOM and not base_url and "install_base_url" not in \
                self.errors:
            self.add_error("install_base_url", _("Enter the base URL of your K3s mirror."))
            return data
        text = (data.get("version") or "").strip()
        if not text or self.errors:
            return data
        channel, version = "", ""
        if is_channel(text):
            channel = text
        else:
            try:
                version = str(parse_version(text))
            except PermanentError:
                self.add_error("version", _("%(value)s is neither a K3s version (like "
                                            "v1.32.5+k3s1) nor a channel (stable, latest, "
                                            "v1.32).") % {"value": text})
                return data
        exists = wizard_checks.k3s_release_exists(source or "", base_url, version=version,
                                                  channel=channel)
        where = base_url if source == InstallSource.CUSTOM else InstallSource(source).label
        if exists is False:
            self.add_error("version", _("K3s %(value)s does not exist at %(source)s.")
                           % {"value": version or channel, "source": where})
        elif exists is None and channel:
            # The create resolves the channel from the panel (clusters.adapters.k3s_release).
            self.warnings.append(str(_(
                "The panel could not reach %(source)s to look up channel %(value)s; the create "
                "resolves it there when it starts and stops if it still cannot. Give an exact "
                "version to avoid that.") % {"source": where, "value": channel}))
        elif exists is None:
            self.warnings.append(str(_(
                "The panel could not reach %(source)s to check that K3s %(value)s exists; the "
                "hosts will download it during the install.") % {"source": where,
                                                                 "value": version or channel}))
        data["k3s_version"], data["k3s_channel"] = version, channel
        return data
