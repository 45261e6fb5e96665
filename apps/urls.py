from __future__ import annotations

from django.urls import path

from apps import views

urlpatterns = [
    path("", views.app_list, name="app-list"),
    path("new/", views.app_new, name="app-new"),
    path("<str:name>/", views.app_detail, name="app-detail"),
]
