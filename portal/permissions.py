"""The permission catalogue and the built-in roles, named as Octopus names them."""

from enum import StrEnum


class Permission(StrEnum):
    # System level: granted only through a team role with no space.
    ADMINISTER_SYSTEM = "AdministerSystem"
    CONFIGURE_SERVER = "ConfigureServer"
    SPACE_CREATE = "SpaceCreate"
    SPACE_EDIT = "SpaceEdit"
    SPACE_DELETE = "SpaceDelete"
    USER_VIEW = "UserView"
    USER_EDIT = "UserEdit"
    USER_ROLE_VIEW = "UserRoleView"
    # Space level.
    SPACE_VIEW = "SpaceView"
    TEAM_VIEW = "TeamView"
    TEAM_EDIT = "TeamEdit"
    EVENT_VIEW = "EventView"
    WORKER_VIEW = "WorkerView"
    WORKER_EDIT = "WorkerEdit"
    MACHINE_POLICY_VIEW = "MachinePolicyView"
    MACHINE_POLICY_EDIT = "MachinePolicyEdit"
    ACCOUNT_VIEW = "AccountView"
    ACCOUNT_EDIT = "AccountEdit"
    ENVIRONMENT_VIEW = "EnvironmentView"
    ENVIRONMENT_EDIT = "EnvironmentEdit"
    PROJECT_VIEW = "ProjectView"
    PROJECT_EDIT = "ProjectEdit"
    PROCESS_VIEW = "ProcessView"
    PROCESS_EDIT = "ProcessEdit"
    VARIABLE_VIEW = "VariableView"
    VARIABLE_EDIT = "VariableEdit"
    RELEASE_VIEW = "ReleaseView"
    RELEASE_CREATE = "ReleaseCreate"
    DEPLOYMENT_VIEW = "DeploymentView"
    DEPLOYMENT_CREATE = "DeploymentCreate"
    RUNBOOK_RUN = "RunbookRun"
    TASK_VIEW = "TaskView"
    TASK_CREATE = "TaskCreate"
    TASK_CANCEL = "TaskCancel"
    FEED_VIEW = "FeedView"
    BUILT_IN_FEED_PUSH = "BuiltInFeedPush"


P = Permission

SYSTEM_PERMISSIONS = frozenset(
    {
        P.ADMINISTER_SYSTEM,
        P.CONFIGURE_SERVER,
        P.SPACE_CREATE,
        P.SPACE_EDIT,
        P.SPACE_DELETE,
        P.USER_VIEW,
        P.USER_EDIT,
        P.USER_ROLE_VIEW,
    }
)
SPACE_PERMISSIONS = frozenset(set(Permission) - SYSTEM_PERMISSIONS)

_PROJECT_VIEWER = {
    P.SPACE_VIEW,
    P.PROJECT_VIEW,
    P.PROCESS_VIEW,
    P.ENVIRONMENT_VIEW,
    P.RELEASE_VIEW,
    P.DEPLOYMENT_VIEW,
    P.VARIABLE_VIEW,
    P.TASK_VIEW,
    P.TEAM_VIEW,
    P.FEED_VIEW,
}

# name -> (description, permissions). Seeded by a data migration and kept in step by `ensure_built_in_roles`.
BUILT_IN_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    "System administrator": (
        "Everything, everywhere: the server, users, spaces and all they hold.",
        frozenset(Permission),
    ),
    "System manager": (
        "Configures the server, spaces and users, but cannot grant itself system administration.",
        frozenset(SYSTEM_PERMISSIONS - {P.ADMINISTER_SYSTEM} | {P.SPACE_VIEW, P.TEAM_VIEW, P.TEAM_EDIT, P.EVENT_VIEW}),
    ),
    "Space manager": ("Everything inside a space: infrastructure, projects, teams and tasks.", SPACE_PERMISSIONS),
    "Environment manager": (
        "Manages environments, workers, worker pools, machine policies and accounts.",
        frozenset(
            {
                P.SPACE_VIEW,
                P.ENVIRONMENT_VIEW,
                P.ENVIRONMENT_EDIT,
                P.WORKER_VIEW,
                P.WORKER_EDIT,
                P.MACHINE_POLICY_VIEW,
                P.MACHINE_POLICY_EDIT,
                P.ACCOUNT_VIEW,
                P.ACCOUNT_EDIT,
                P.TASK_VIEW,
                P.TASK_CREATE,
                P.EVENT_VIEW,
            }
        ),
    ),
    "Environment viewer": (
        "Sees environments, workers, worker pools and machine policies.",
        frozenset(
            {P.SPACE_VIEW, P.ENVIRONMENT_VIEW, P.WORKER_VIEW, P.MACHINE_POLICY_VIEW, P.ACCOUNT_VIEW, P.TASK_VIEW}
        ),
    ),
    "Project contributor": (
        "Edits projects, processes and variables; creates releases.",
        frozenset(_PROJECT_VIEWER | {P.PROJECT_EDIT, P.PROCESS_EDIT, P.VARIABLE_EDIT, P.RELEASE_CREATE, P.WORKER_VIEW}),
    ),
    "Deployment creator": (
        "Deploys releases and runs runbooks.",
        frozenset(_PROJECT_VIEWER | {P.DEPLOYMENT_CREATE, P.RUNBOOK_RUN, P.TASK_CREATE, P.TASK_CANCEL}),
    ),
    "Project viewer": ("Sees projects, releases, deployments and their tasks.", frozenset(_PROJECT_VIEWER)),
}
