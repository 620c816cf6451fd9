"""Pages under /<Spaces-N>/ (portal/urls.py includes this with the space id). Environments and deployment
targets sit under infrastructure/, beside the worker pools that infrastructure/urls.py serves."""

from django.urls import path
from django.views.generic import RedirectView

from deployments import environment_views as e
from deployments import project_views as p
from deployments import views

PROJECT = "projects/<int:project_pk>/"
RUNBOOK = PROJECT + "runbooks/<int:runbook_pk>/"

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
    path("projects/<int:pk>/settings/", p.project_settings, name="project-settings"),
    path("projects/<int:pk>/delete/", p.project_delete, name="project-delete"),
    path(PROJECT + "process/", p.process, name="project-process"),
    path(PROJECT + "steps/add/", p.step_edit, name="step-add"),
    path(PROJECT + "steps/<int:pk>/", p.step_edit, name="step-edit"),
    path(PROJECT + "steps/<int:pk>/delete/", p.step_delete, name="step-delete"),
    path(PROJECT + "steps/<int:pk>/move/<str:direction>/", p.step_move, name="step-move"),
    path(PROJECT + "variables/", p.variable_list, name="project-variables"),
    path(PROJECT + "variables/add/", p.variable_list, name="variable-add"),
    path(PROJECT + "variables/<int:pk>/", p.variable_edit, name="variable-edit"),
    path(PROJECT + "variables/<int:pk>/delete/", p.variable_delete, name="variable-delete"),
    path(PROJECT + "releases/add/", p.release_create, name="release-create"),
    path(PROJECT + "releases/<int:pk>/", p.release_detail, name="release"),
    path(PROJECT + "releases/<int:pk>/deploy/", p.release_deploy, name="release-deploy"),
    path(PROJECT + "runbooks/", p.runbook_list, name="project-runbooks"),
    path(PROJECT + "runbooks/add/", p.runbook_list, name="runbook-add"),
    path(PROJECT + "runbooks/<int:pk>/", p.runbook_detail, name="runbook"),
    path(PROJECT + "runbooks/<int:pk>/settings/", p.runbook_settings, name="runbook-settings"),
    path(PROJECT + "runbooks/<int:pk>/delete/", p.runbook_delete, name="runbook-delete"),
    path(RUNBOOK + "steps/add/", p.step_edit, name="runbook-step-add"),
    path(RUNBOOK + "steps/<int:pk>/", p.step_edit, name="runbook-step-edit"),
    path(RUNBOOK + "steps/<int:pk>/delete/", p.step_delete, name="runbook-step-delete"),
    path(RUNBOOK + "steps/<int:pk>/move/<str:direction>/", p.step_move, name="runbook-step-move"),
    path("infrastructure/environments/", e.environment_list, name="environments"),
    path("infrastructure/environments/<int:pk>/", e.environment_edit, name="environment"),
    path("infrastructure/environments/<int:pk>/delete/", e.environment_delete, name="environment-delete"),
    path("infrastructure/environments/<int:pk>/move/<str:direction>/", e.environment_move, name="environment-move"),
    path("infrastructure/deploymenttargets/", e.target_list, name="deployment-targets"),
    path("infrastructure/deploymenttargets/<int:pk>/", e.target_edit, name="deployment-target"),
    path("infrastructure/deploymenttargets/<int:pk>/delete/", e.target_delete, name="deployment-target-delete"),
    path("environments/", RedirectView.as_view(pattern_name="environments", permanent=False)),
    path("library/packages/", p.package_list, name="packages"),
    path("library/packages/<int:pk>/delete/", p.package_delete, name="package-delete"),
]
