"""The write path for what deployments are made of, one module per resource: environments, deployment targets,
projects, the steps of a deployment process or runbook, variables, runbooks, the built-in feed's packages, and the
Features setting. Pages, the API and the admin call these. Each validates (a ValidationError names the field), saves
in one transaction and records an audit event; secrets appear in events only redacted."""

from deployments.services.catalog.editing import moved
from deployments.services.catalog.environments import (
    ENVIRONMENT_FIELDS,
    create_environment,
    delete_environment,
    reorder_environments,
    update_environment,
)
from deployments.services.catalog.features import set_builtin_worker_enabled
from deployments.services.catalog.packages import delete_package, packages_folder, store_package
from deployments.services.catalog.pool_referrers import (
    POOL_REFERRER_FINDERS,
    releases_using_pool,
    steps_using_pool,
    variables_using_pool,
)
from deployments.services.catalog.projects import PROJECT_FIELDS, create_project, delete_project, update_project
from deployments.services.catalog.runbooks import RUNBOOK_FIELDS, create_runbook, delete_runbook, update_runbook
from deployments.services.catalog.steps import STEP_FIELDS, bump_process_version, delete_step, reorder_steps, save_step
from deployments.services.catalog.targets import (
    TARGET_FIELDS,
    create_deployment_target,
    delete_deployment_target,
    update_deployment_target,
)
from deployments.services.catalog.variables import VARIABLE_FIELDS, delete_variable, save_variable

__all__ = [
    "ENVIRONMENT_FIELDS",
    "POOL_REFERRER_FINDERS",
    "PROJECT_FIELDS",
    "RUNBOOK_FIELDS",
    "STEP_FIELDS",
    "TARGET_FIELDS",
    "VARIABLE_FIELDS",
    "bump_process_version",
    "create_deployment_target",
    "create_environment",
    "create_project",
    "create_runbook",
    "delete_deployment_target",
    "delete_environment",
    "delete_package",
    "delete_project",
    "delete_runbook",
    "delete_step",
    "delete_variable",
    "moved",
    "packages_folder",
    "releases_using_pool",
    "reorder_environments",
    "reorder_steps",
    "save_step",
    "save_variable",
    "set_builtin_worker_enabled",
    "steps_using_pool",
    "store_package",
    "update_deployment_target",
    "update_environment",
    "update_project",
    "update_runbook",
    "variables_using_pool",
]
