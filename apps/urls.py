from __future__ import annotations

from django.urls import include, path

from apps import views

urlpatterns = [
    path("", views.app_list, name="app-list"),
    path("new/", views.app_new, name="app-new"),
    path("<str:name>/", views.app_detail, name="app-detail"),
    path("<str:name>/deploy/", views.app_deploy, name="app-deploy"),
    path("<str:name>/redeploy/", views.app_redeploy, name="app-redeploy"),
    path("<str:name>/rollback/", views.app_rollback, name="app-rollback"),
    path("<str:name>/cancel/", views.app_cancel, name="app-cancel"),
    path("<str:name>/secrets/", include("secrets_vault.urls")),
]
