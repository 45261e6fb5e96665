from __future__ import annotations

from django.urls import path

from deployments.webhooks import views

urlpatterns = [
    path("webhooks/github/<str:name>/", views.github_webhook, name="github-webhook"),
]
