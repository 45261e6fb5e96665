from __future__ import annotations

from django.urls import path

from deployments import consumers

websocket_urlpatterns = [path("ws/deploys/<int:pk>/", consumers.DeployLogConsumer.as_asgi())]
