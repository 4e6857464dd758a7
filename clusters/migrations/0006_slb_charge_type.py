"""Record how each cluster's CLB is billed.

Every cluster that exists when this runs was made by a panel that bought pay-by-specification
CLBs (LoadBalancerSpec, no InstanceChargeType), so existing rows get PayBySpec and keep their
spec, and their ledger's SLB rows say so; new clusters default to PayByCLCU with no spec,
the only CLB sold since 2025-06-01.
"""

from django.db import migrations, models


def mark_existing_slbs(apps, schema_editor):
    Cluster = apps.get_model("clusters", "Cluster")
    CloudResource = apps.get_model("clusters", "CloudResource")
    specs = dict(Cluster.objects.values_list("pk", "slb_spec"))
    for row in CloudResource.objects.filter(kind="slb").exclude(provider_id=""):
        attributes = dict(row.attributes or {})
        attributes.setdefault("instance_charge_type", "PayBySpec")
        attributes.setdefault("spec", specs.get(row.cluster_id) or "slb.s1.small")
        row.attributes = attributes
        row.save(update_fields=["attributes"])


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0005_node_audit_actions'),
    ]

    operations = [
        migrations.AddField(
            model_name='cluster',
            name='slb_charge_type',
            field=models.CharField(choices=[('PayByCLCU', 'Pay-by-LCU'), ('PayBySpec', 'Pay-by-specification (no longer sold)')], default='PayBySpec', max_length=16, verbose_name='SLB billing'),
        ),
        migrations.AlterField(
            model_name='cluster',
            name='slb_charge_type',
            field=models.CharField(choices=[('PayByCLCU', 'Pay-by-LCU'), ('PayBySpec', 'Pay-by-specification (no longer sold)')], default='PayByCLCU', max_length=16, verbose_name='SLB billing'),
        ),
        migrations.AlterField(
            model_name='cluster',
            name='slb_spec',
            field=models.CharField(blank=True, default='', max_length=32, verbose_name='SLB spec'),
        ),
        migrations.RunPython(mark_existing_slbs, migrations.RunPython.noop),
    ]
