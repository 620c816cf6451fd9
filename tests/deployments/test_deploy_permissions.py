"""A user may only deploy a process whose steps use pools their teams may use (django-guardian grants)."""

import pytest
from django.core.exceptions import PermissionDenied

from deployments.services import deploy
from infrastructure.services.pools import set_teams_that_may_use_pool
from portal.services import teams
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db


def test_a_pool_granted_to_other_teams_refuses_the_deployment_naming_the_pool(
    administrator, deployment_creator, project, production, make_pool, space
):
    pool = make_pool("Restricted")
    add_step(project, "Build", "echo hi", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    deploy.deploy_release(
        actor=deployment_creator, release=release, environment=production
    )  # open to all until granted
    admins_only = teams.create_team(actor=administrator, name="Pool owners", space=space)
    set_teams_that_may_use_pool(actor=administrator, pool=pool, teams=[admins_only])
    with pytest.raises(PermissionDenied, match="Restricted"):
        deploy.deploy_release(actor=deployment_creator, release=release, environment=production)
    admins_only.members.add(deployment_creator)
    assert (
        deploy.deploy_release(actor=deployment_creator, release=release, environment=production).task.state == "Queued"
    )


def test_server_steps_need_the_default_pool(
    administrator, deployment_creator, project, production, default_pool, space
):
    add_step(project, "On the server", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    team = teams.create_team(actor=administrator, name="Ops", space=space)
    set_teams_that_may_use_pool(actor=administrator, pool=default_pool, teams=[team])
    with pytest.raises(PermissionDenied, match="Default Worker Pool"):
        deploy.deploy_release(actor=deployment_creator, release=release, environment=production)


def test_a_project_viewer_cannot_deploy_or_create_releases(administrator, project_viewer, project, production):
    add_step(project, "Build", "echo hi")
    with pytest.raises(PermissionDenied):
        deploy.create_release(actor=project_viewer, project=project)
    release = deploy.create_release(actor=administrator, project=project)
    with pytest.raises(PermissionDenied):
        deploy.deploy_release(actor=project_viewer, release=release, environment=production)


def test_the_pool_page_grants_use_to_teams_and_deploying_then_needs_membership(
    page_client, administrator, deployment_creator, project, production, make_pool, space
):
    pool = make_pool("Guarded")
    add_step(project, "Build", "echo hi", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    owners = teams.create_team(actor=administrator, name="Owners", space=space)
    admin_pages = page_client(administrator)
    admin_pages.post(f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/teams/", {"teams": [owners.pk]})
    assert (
        f'value="{owners.pk}" id="team-{owners.pk}" checked'
        in admin_pages.get(f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/").content.decode()
    )
    refused = page_client(deployment_creator).post(
        f"/{space.octopus_id}/projects/{project.pk}/releases/{release.pk}/deploy/",
        {"environment": production.pk},
        follow=True,
    )
    assert "You may not run steps on the worker pool Guarded" in refused.content.decode()
    assert (
        page_client(deployment_creator)
        .post(f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/teams/", {})
        .status_code
        == 403
    )
