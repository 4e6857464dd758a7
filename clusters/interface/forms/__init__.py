"""The forms a person fills in, one module per page: the wizard's six steps, the cloud
account, the dashboard filter, the day-2 forms, the API token.

Every rule that can be checked before money is spent is checked here, with the message next
to the field: addresses, ports, keys, RDS's password rules, the DSN grammar K3s reads, the
K3s version at the chosen install source. Live checks go through clusters.adapters.wizard_checks.
"""

from clusters.interface.forms.api_token import ApiTokenForm
from clusters.interface.forms.cloud_account import CloudAccountForm
from clusters.interface.forms.common import (
    CLUSTER_NAME,
    COMMON_REGIONS,
    DNS_NAME,
    RDS_DEFAULT_VERSION,
    RDS_VERSIONS,
    SSH_USER,
    WizardForm,
    check_region_available,
    failed_secrets,
    keep_saved_secrets,
    with_initials,
)
from clusters.interface.forms.dashboard import ClusterFilterForm
from clusters.interface.forms.day2 import (
    AddInstancesForm,
    AddNodeForm,
    KubeconfigForm,
    UpgradeForm,
)
from clusters.interface.forms.wizard_account import AccountStepForm
from clusters.interface.forms.wizard_datastore import DatastoreStepForm
from clusters.interface.forms.wizard_hosts import (
    BaseHostFormSet,
    HostForm,
    HostFormSet,
    hosts_fit,
    hosts_outside,
)
from clusters.interface.forms.wizard_k3s import K3sStepForm
from clusters.interface.forms.wizard_network import NetworkStepForm
from clusters.interface.forms.wizard_review import ReviewStepForm

__all__ = [
    "CLUSTER_NAME",
    "COMMON_REGIONS",
    "DNS_NAME",
    "RDS_DEFAULT_VERSION",
    "RDS_VERSIONS",
    "SSH_USER",
    "AccountStepForm",
    "AddInstancesForm",
    "AddNodeForm",
    "ApiTokenForm",
    "BaseHostFormSet",
    "CloudAccountForm",
    "ClusterFilterForm",
    "DatastoreStepForm",
    "HostForm",
    "HostFormSet",
    "K3sStepForm",
    "KubeconfigForm",
    "NetworkStepForm",
    "ReviewStepForm",
    "UpgradeForm",
    "WizardForm",
    "check_region_available",
    "failed_secrets",
    "hosts_fit",
    "hosts_outside",
    "keep_saved_secrets",
    "with_initials",
]
