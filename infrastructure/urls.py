"""Pages under /<Spaces-N>/infrastructure/ (portal/urls.py includes this with the space id)."""

from django.urls import path

from infrastructure.views import accounts, policies, pools, wizard, workers

urlpatterns = [
    path("", pools.overview, name="infrastructure"),
    path("workerpools/", pools.workerpool_list, name="workerpools"),
    path("workerpools/rows/", pools.workerpool_rows, name="workerpool-rows"),
    path("workerpools/<int:pk>/", pools.workerpool_detail, name="workerpool"),
    path("workerpools/<int:pk>/workers/", pools.workerpool_workers, name="workerpool-workers"),
    path("workerpools/<int:pk>/default/", pools.workerpool_make_default, name="workerpool-make-default"),
    path("workerpools/<int:pk>/delete/", pools.workerpool_delete, name="workerpool-delete"),
    path("workerpools/<int:pk>/teams/", pools.workerpool_teams, name="workerpool-teams"),
    path("workerpools/<int:pk>/move/<str:direction>/", pools.workerpool_move, name="workerpool-move"),
    path("workers/", workers.worker_list, name="workers"),
    path("workers/rows/", workers.worker_rows, name="worker-rows"),
    path("workers/new/", wizard.worker_add, name="worker-add"),
    path("workers/new/<str:platform>/<str:style>/", wizard.worker_add_endpoint, name="worker-add-endpoint"),
    path("workers/<int:pk>/", workers.worker_detail, name="worker"),
    path("workers/<int:pk>/status/", workers.worker_status, name="worker-status"),
    path("workers/<int:pk>/edit/", workers.worker_edit, name="worker-edit"),
    path("workers/<int:pk>/health/", workers.worker_check_health, name="worker-check-health"),
    path("workers/<int:pk>/disable/", workers.worker_set_disabled, {"disabled": True}, name="worker-disable"),
    path("workers/<int:pk>/enable/", workers.worker_set_disabled, {"disabled": False}, name="worker-enable"),
    path("workers/<int:pk>/delete/", workers.worker_delete, name="worker-delete"),
    path("machinepolicies/", policies.machinepolicy_list, name="machinepolicies"),
    path("machinepolicies/new/", policies.machinepolicy_edit, name="machinepolicy-add"),
    path("machinepolicies/<int:pk>/", policies.machinepolicy_edit, name="machinepolicy"),
    path("machinepolicies/<int:pk>/delete/", policies.machinepolicy_delete, name="machinepolicy-delete"),
    path("accounts/", accounts.account_list, name="accounts"),
    path("accounts/<int:pk>/", accounts.account_edit, name="account"),
    path("accounts/<int:pk>/delete/", accounts.account_delete, name="account-delete"),
]
