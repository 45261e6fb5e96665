"""Included under /apps/<name>/secrets/ (apps/urls.py): every view gets the app's name."""

from __future__ import annotations

from django.urls import path

from secrets_vault import views

urlpatterns = [
    path("", views.secret_list, name="secret-list"),
    path("repository/deploy-key/", views.repo_deploy_key, name="repo-deploy-key"),
    path("repository/token/", views.repo_token, name="repo-token"),
    path("<secretkey:key>/delete/", views.secret_delete, name="secret-delete"),
]
