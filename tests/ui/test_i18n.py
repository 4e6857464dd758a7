"""Simplified Chinese: picked from Accept-Language, or chosen with the language switcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from clusters.core.titles import title
from clusters.engine import pipeline
from clusters.models import RunKind
from clusters.operations import create
from tests.support.factories import make_cluster

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}
PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_message_has_a_chinese_translation() -> None:
    entries = PO.read_text(encoding="utf-8").split("\n\n")[1:]
    untranslated = [e for e in entries if ('msgstr ""' in e and "msgstr[0]" not in e)
                    or 'msgstr[0] ""' in e]
    assert not untranslated
    assert "#, fuzzy" not in PO.read_text(encoding="utf-8")


def test_accept_language_chinese_renders_the_pages_in_chinese(user: Any, client_for: Any) -> None:
    client = client_for(user, **ZH)
    empty = client.get(reverse("clusters:dashboard")).content.decode()
    assert '<html lang="zh-hans">' in empty
    assert "还没有集群" in empty and "创建您的第一个集群" in empty
    cluster = make_cluster(owner=user, nodes=2, name="prod")
    pipeline.create_run(cluster, RunKind.CREATE, [
        pipeline.StepSpec("preflight_cloud", "Check credentials, region, zone, VPC and vSwitch",
                          "test.work"),
        pipeline.StepSpec("server_1", title("Install K3s server %(n)s (%(ip)s)", n=1,
                                            ip="10.0.0.1"), "test.work")],
        start=False)
    dashboard = client.get(reverse("clusters:dashboard")).content.decode()
    assert "健康状况" in dashboard and "草稿" in dashboard
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    server_title = "安装 K3s 服务器 1（10.0.0.1）"  # noqa: RUF001 - Chinese punctuation
    for text in ("创建集群", "检查凭据、地域、可用区、VPC 和交换机", server_title,
                 "待处理", "运行历史", "已购买的资源"):
        assert text in page, text
    wizard = client.get(reverse("clusters:wizard-step", args=["account"])).content.decode()
    assert "集群名称" in wizard and "地域" in wizard


def test_form_errors_are_in_chinese_too(user: Any, client_for: Any) -> None:
    client = client_for(user, **ZH)
    response = client.post(reverse("clusters:wizard-step", args=["account"]),
                           {"name": "Bad Name", "region": "cn-hangzhou"})
    page = response.content.decode()
    assert "请使用小写字母、数字和“-”" in page
    assert "请选择一个云账号，或添加新的 AccessKey。" in page  # noqa: RUF001


def test_login_page_in_chinese_for_anonymous_visitors(client: Client) -> None:
    page = client.get(reverse("login"), **ZH).content.decode()
    assert "登录" in page and "在阿里云上创建并监控高可用 K3s 集群。" in page


def test_language_switcher_sets_chinese_for_later_pages(user: Any, client_for: Any) -> None:
    client = client_for(user)
    assert "Clusters" in client.get(reverse("clusters:dashboard")).content.decode()
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    assert "集群" in client.get(reverse("clusters:dashboard")).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "No clusters yet" in client.get(reverse("clusters:dashboard")).content.decode()


def test_every_step_title_of_the_create_plan_is_translated(user: Any) -> None:
    for kind in ("rds", "external"):
        cluster = make_cluster(owner=user, nodes=3, datastore_kind=kind)
        with translation.override("zh-hans"):
            untranslated = [spec.step_title.msgid for spec in create.create_plan(cluster)
                            if spec.step_title.display() == spec.step_title.english()]
        assert not untranslated
