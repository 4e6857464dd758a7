"""The NLB's second vSwitch needs no field (network_order and the ledger carry it). Bought
instances: the Node says whether SSH must use its private address although a public one is
recorded; the cluster when its generated SSH private key was downloaded (before "keep the
instances"), an audited action."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0032_cluster_join_security_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="node",
            name="ssh_private_only",
            field=models.BooleanField(default=False, verbose_name="SSH to the private IP"),
        ),
        migrations.AddField(
            model_name="cluster",
            name="generated_ssh_key_downloaded_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="generated SSH private key downloaded"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(choices=[('cloud_account_add', 'Cloud account added'), ('cluster_create', 'Cluster creation started'), ('run_retry', 'Run retried'), ('run_retry_refused', 'Retry refused'), ('run_cancel', 'Run cancelled'), ('cluster_destroy', 'Cluster destruction started'), ('kubeconfig_download', 'Kubeconfig downloaded'), ('cluster_upgrade', 'K3s upgrade started'), ('kubeconfig_renew', 'Kubeconfig renewal started'), ('api_allowlist', 'API allow-list change started'), ('node_add', 'Node addition started'), ('node_remove', 'Node removal started'), ('run_diagnostics', 'Diagnostics requested'), ('node_host_key', 'Node host key accepted'), ('login_failed', 'Sign-in failed'), ('health_check', 'Health check requested'), ('etcd_snapshots_refresh', 'etcd snapshots refresh requested'), ('kube_credential_issue', 'Personal kubeconfig issued'), ('kube_credential_revoke', 'Personal kubeconfig revoked'), ('admin_change', 'Changed in the admin'), ('admin_delete', 'Deleted in the admin'), ('api_token_create', 'API token created'), ('api_token_revoke', 'API token revoked'), ('api_token_use', 'API token used'), ('ssh_key_download', "Instances' SSH private key downloaded")], max_length=32, verbose_name='action'),
        ),
    ]
