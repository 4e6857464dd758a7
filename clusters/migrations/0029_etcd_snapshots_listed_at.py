from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0028_instance_order'),
    ]

    operations = [
        migrations.AddField(
            model_name='cluster',
            name='etcd_snapshots_listed_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('cloud_account_add', 'Cloud account added'), ('cluster_create', 'Cluster creation started'), ('run_retry', 'Run retried'), ('run_retry_refused', 'Retry refused'), ('run_cancel', 'Run cancelled'), ('cluster_destroy', 'Cluster destruction started'), ('kubeconfig_download', 'Kubeconfig downloaded'), ('cluster_upgrade', 'K3s upgrade started'), ('kubeconfig_renew', 'Kubeconfig renewal started'), ('api_allowlist', 'API allow-list change started'), ('node_add', 'Node addition started'), ('node_remove', 'Node removal started'), ('run_diagnostics', 'Diagnostics requested'), ('node_host_key', 'Node host key accepted'), ('login_failed', 'Sign-in failed'), ('health_check', 'Health check requested'), ('etcd_snapshots_refresh', 'etcd snapshots refresh requested'), ('kube_credential_issue', 'Personal kubeconfig issued'), ('kube_credential_revoke', 'Personal kubeconfig revoked'), ('admin_change', 'Changed in the admin'), ('admin_delete', 'Deleted in the admin'), ('api_token_create', 'API token created'), ('api_token_revoke', 'API token revoked'), ('api_token_use', 'API token used')], max_length=32, verbose_name='action'),
        ),
    ]
