"""Pages under /<Spaces-N>/ (portal/urls.py includes this with the space id). Environments and deployment
targets sit under infrastructure/, beside the worker pools that infrastructure/urls.py serves."""

from django.urls import path
from django.views.generic import RedirectView

from deployments.views import environments, packages, process, projects, releases, runbooks, tasks, variables

PROJECT = "projects/<int:project_pk>/"
RUNBOOK = PROJECT + "runbooks/<int:runbook_pk>/"

urlpatterns = [
    path("tasks/", tasks.task_list, name="tasks"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task"),
    path("tasks/<int:pk>/intervention/", tasks.task_intervention, name="task-intervention"),
    path("tasks/<int:pk>/rerun/", tasks.task_rerun, name="task-rerun"),
    path("tasks/<int:pk>/cancel/", tasks.task_cancel, name="task-cancel"),
    path("tasks/<int:pk>/artifacts/<int:artifact_pk>/", tasks.artifact_download, name="task-artifact"),
    path("tasks/console/", tasks.script_console, name="script-console"),
    path("projects/", projects.project_list, name="projects"),
    path("projects/<int:pk>/", projects.project_detail, name="project"),
    path("projects/<int:pk>/settings/", projects.project_settings, name="project-settings"),
    path("projects/<int:pk>/delete/", projects.project_delete, name="project-delete"),
    path(PROJECT + "process/", process.process, name="project-process"),
    path(PROJECT + "steps/add/", process.step_edit, name="step-add"),
    path(PROJECT + "steps/<int:pk>/", process.step_edit, name="step-edit"),
    path(PROJECT + "steps/<int:pk>/delete/", process.step_delete, name="step-delete"),
    path(PROJECT + "steps/<int:pk>/move/<str:direction>/", process.step_move, name="step-move"),
    path(PROJECT + "variables/", variables.variable_list, name="project-variables"),
    path(PROJECT + "variables/add/", variables.variable_list, name="variable-add"),
    path(PROJECT + "variables/<int:pk>/", variables.variable_edit, name="variable-edit"),
    path(PROJECT + "variables/<int:pk>/delete/", variables.variable_delete, name="variable-delete"),
    path(PROJECT + "releases/add/", releases.release_create, name="release-create"),
    path(PROJECT + "releases/<int:pk>/", releases.release_detail, name="release"),
    path(PROJECT + "releases/<int:pk>/deploy/", releases.release_deploy, name="release-deploy"),
    path(PROJECT + "runbooks/", runbooks.runbook_list, name="project-runbooks"),
    path(PROJECT + "runbooks/add/", runbooks.runbook_list, name="runbook-add"),
    path(PROJECT + "runbooks/<int:pk>/", runbooks.runbook_detail, name="runbook"),
    path(PROJECT + "runbooks/<int:pk>/settings/", runbooks.runbook_settings, name="runbook-settings"),
    path(PROJECT + "runbooks/<int:pk>/delete/", runbooks.runbook_delete, name="runbook-delete"),
    path(RUNBOOK + "steps/add/", process.step_edit, name="runbook-step-add"),
    path(RUNBOOK + "steps/<int:pk>/", process.step_edit, name="runbook-step-edit"),
    path(RUNBOOK + "steps/<int:pk>/delete/", process.step_delete, name="runbook-step-delete"),
    path(RUNBOOK + "steps/<int:pk>/move/<str:direction>/", process.step_move, name="runbook-step-move"),
    path("infrastructure/environments/", environments.environment_list, name="environments"),
    path("infrastructure/environments/<int:pk>/", environments.environment_edit, name="environment"),
    path("infrastructure/environments/<int:pk>/delete/", environments.environment_delete, name="environment-delete"),
    path(
        "infrastructure/environments/<int:pk>/move/<str:direction>/",
        environments.environment_move,
        name="environment-move",
    ),
    path("infrastructure/deploymenttargets/", environments.target_list, name="deployment-targets"),
    path("infrastructure/deploymenttargets/<int:pk>/", environments.target_edit, name="deployment-target"),
    path(
        "infrastructure/deploymenttargets/<int:pk>/delete/", environments.target_delete, name="deployment-target-delete"
    ),
    path("environments/", RedirectView.as_view(pattern_name="environments", permanent=False)),
    path("library/packages/", packages.package_list, name="packages"),
    path("library/packages/<int:pk>/delete/", packages.package_delete, name="package-delete"),
]
