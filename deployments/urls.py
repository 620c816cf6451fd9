from django.urls import path

from deployments import project_views as p
from deployments import views

urlpatterns = [
    path("tasks/", views.task_list, name="tasks"),
    path("tasks/<int:pk>/", views.task_detail, name="task"),
    path("tasks/<int:pk>/intervention/", p.task_intervention, name="task-intervention"),
    path("tasks/<int:pk>/rerun/", p.task_rerun, name="task-rerun"),
    path("tasks/<int:pk>/cancel/", p.task_cancel, name="task-cancel"),
    path("tasks/<int:pk>/artifacts/<int:artifact_pk>/", views.artifact_download, name="task-artifact"),
    path("tasks/console/", p.script_console, name="script-console"),
    path("projects/", p.project_list, name="projects"),
    path("projects/<int:pk>/", p.project_detail, name="project"),
    path("projects/<int:project_pk>/steps/add/", p.step_edit, name="step-add"),
    path("projects/<int:project_pk>/steps/<int:pk>/", p.step_edit, name="step-edit"),
    path("projects/<int:project_pk>/steps/<int:pk>/delete/", p.step_delete, name="step-delete"),
    path("projects/<int:project_pk>/variables/add/", p.variable_add, name="variable-add"),
    path("projects/<int:project_pk>/variables/<int:pk>/delete/", p.variable_delete, name="variable-delete"),
    path("projects/<int:project_pk>/releases/add/", p.release_create, name="release-create"),
    path("projects/<int:project_pk>/releases/<int:pk>/deploy/", p.release_deploy, name="release-deploy"),
    path("projects/<int:project_pk>/runbooks/add/", p.runbook_add, name="runbook-add"),
    path("projects/<int:project_pk>/runbooks/<int:pk>/", p.runbook_detail, name="runbook"),
    path("projects/<int:project_pk>/runbooks/<int:runbook_pk>/steps/add/", p.step_edit, name="runbook-step-add"),
    path("projects/<int:project_pk>/runbooks/<int:runbook_pk>/steps/<int:pk>/", p.step_edit, name="runbook-step-edit"),
    path("environments/", p.environment_list, name="environments"),
    path("library/packages/", p.package_list, name="packages"),
]
