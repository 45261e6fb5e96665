from __future__ import annotations

from django.urls import include, path

from deployments import views

urlpatterns = [
    path("deploys/<int:pk>/", views.deploy_detail, name="deploy-detail"),
    path("deploys/<int:pk>/logs/stream", views.deploy_log_stream, name="deploy-log-stream"),
    path("", include("deployments.webhooks.urls")),
    path("system/disk/", views.disk, name="disk"),
]
