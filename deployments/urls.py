from __future__ import annotations

from django.urls import path

from deployments import views, webhooks

urlpatterns = [
    path("deploys/<int:pk>/", views.deploy_detail, name="deploy-detail"),
    path("deploys/<int:pk>/logs/stream", views.deploy_log_stream, name="deploy-log-stream"),
    path("webhooks/github/<str:name>/", webhooks.github_webhook, name="github-webhook"),
    path("system/disk/", views.disk, name="disk"),
]
