from __future__ import annotations

from django.urls import include, path

from apps import converters, views, views_releases, views_settings  # noqa: F401  (converters: <app:...>, ...)

urlpatterns = [
    path("", views.app_list, name="app-list"),
    path("new/", views.app_new, name="app-new"),
    path("<app:name>/", views.app_detail, name="app-detail"),
    path("<app:name>/settings/", views_settings.app_settings, name="app-settings"),
    path("<app:name>/settings/env/", views_settings.app_env_set, name="app-env-set"),
    path(
        "<app:name>/settings/env/<secretkey:key>/unset/",
        views_settings.app_env_unset,
        name="app-env-unset",
    ),
    path(
        "<app:name>/settings/webhook-secret/",
        views_settings.app_webhook_secret,
        name="app-webhook-secret",
    ),
    path("<app:name>/delete/", views_settings.app_delete, name="app-delete"),
    path("<app:name>/deploy/", views.app_deploy, name="app-deploy"),
    path("<app:name>/redeploy/", views.app_redeploy, name="app-redeploy"),
    path("<app:name>/rollback/", views_releases.app_rollback, name="app-rollback"),
    path("<app:name>/promote/<int:pk>/", views_releases.app_promote, name="app-promote"),
    path("<app:name>/cancel/", views_releases.app_cancel, name="app-cancel"),
    path(
        "<app:name>/deploys/<int:pk>/cancel/",
        views_releases.deploy_cancel,
        name="deploy-cancel",
    ),
    path("<app:name>/secrets/", include("secrets_vault.urls")),
]
