from django.urls import path

from infrastructure import views

urlpatterns = [
    path("", views.overview, name="infrastructure"),
    path("workerpools/", views.workerpool_list, name="workerpools"),
    path("workerpools/<int:pk>/", views.workerpool_detail, name="workerpool"),
    path("workerpools/<int:pk>/default/", views.workerpool_make_default, name="workerpool-make-default"),
    path("workerpools/<int:pk>/delete/", views.workerpool_delete, name="workerpool-delete"),
    path("workerpools/<int:pk>/move/<str:direction>/", views.workerpool_move, name="workerpool-move"),
    path("workers/", views.worker_list, name="workers"),
    path("workers/new/", views.worker_add, name="worker-add"),
    path("workers/new/<str:platform>/<str:style>/", views.worker_add_style, name="worker-add-style"),
    path("workers/<int:pk>/", views.worker_detail, name="worker"),
    path("workers/<int:pk>/health/", views.worker_check_health, name="worker-check-health"),
    path("workers/<int:pk>/toggle/", views.worker_toggle, name="worker-toggle"),
    path("workers/<int:pk>/delete/", views.worker_delete, name="worker-delete"),
    path("machinepolicies/", views.machinepolicy_list, name="machinepolicies"),
    path("machinepolicies/new/", views.machinepolicy_edit, name="machinepolicy-add"),
    path("machinepolicies/<int:pk>/", views.machinepolicy_edit, name="machinepolicy"),
    path("accounts/", views.account_list, name="accounts"),
]
