from __future__ import annotations

from django.urls import include, path

from apps import converters  # noqa: F401  (registers <app:...>)
from deployments import node_views, runtime_log_views, views

urlpatterns = [
    path("deploys/<int:pk>/", views.deploy_detail, name="deploy-detail"),
    path("deploys/<int:pk>/logs/stream", views.deploy_log_stream, name="deploy-log-stream"),
    path("apps/<app:name>/logs/", runtime_log_views.app_logs, name="app-logs"),
    path("apps/<app:name>/logs/stream", runtime_log_views.app_log_stream, name="app-log-stream"),
    path("", include("deployments.webhooks.urls")),
    path("system/disk/", views.disk, name="disk"),
    path("nodes/", node_views.node_list, name="node-list"),
    path("nodes/<str:node>/availability", node_views.node_availability, name="node-availability"),
]
