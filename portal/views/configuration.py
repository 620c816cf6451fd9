"""Configuration ➜ Users, Teams, Spaces, Audit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from infrastructure.services.certificates import current_server_certificate, rotate_server_certificate
from portal.forms import (
    AuditFilterForm,
    RoleAssignmentForm,
    SpaceForm,
    TeamForm,
    TeamMemberForm,
    UserCreateForm,
    UserEditForm,
)
from portal.models import ScopedUserRole, Space, Team, User
from portal.permissions import Permission as P
from portal.services import spaces, teams, users
from portal.services.access import has_permission, require_permission, spaces_visible_to
from portal.services.audit import events_visible_to
from portal.views.forms import refuse, submit


@login_required
def index(request):
    user = request.user
    return render(
        request,
        "portal/configuration/index.html",
        {
            "may_view_users": has_permission(user, P.USER_VIEW),
            "may_create_spaces": has_permission(user, P.SPACE_CREATE),
        },
    )


# Users ----------------------------------------------------------------------------------------


@login_required
def user_list(request):
    require_permission(request.user, P.USER_VIEW)
    form, status = UserCreateForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.USER_EDIT)
        form = UserCreateForm(request.POST)
        user = submit(
            form,
            lambda data: users.create_user(
                actor=request.user,
                username=data["username"],
                password=data["password"] or None,
                display_name=data["display_name"],
                email=data["email"],
                is_service=data["is_service"],
            ),
        )
        if user:
            messages.success(request, f"User {user.username} created.")
            return redirect("configuration-user", pk=user.pk)
        status = 400
    query = request.GET.get("q", "").strip()
    people = User.objects.annotate(team_count=Count("teams"))
    if query:
        people = people.filter(
            Q(username__icontains=query) | Q(display_name__icontains=query) | Q(email__icontains=query)
        )
    page = Paginator(people.order_by("username"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/configuration/users.html",
        {
            "page": page,
            "form": form,
            "query": query,
            "may_edit": has_permission(request.user, P.USER_EDIT),
        },
        status=status,
    )


@login_required
def user_detail(request, pk: int):
    require_permission(request.user, P.USER_VIEW)
    person = get_object_or_404(User, pk=pk)
    form, status = (
        UserEditForm(
            initial={"display_name": person.display_name, "email": person.email, "is_active": person.is_active}
        ),
        200,
    )
    if request.method == "POST":
        require_permission(request.user, P.USER_EDIT)
        form = UserEditForm(request.POST)
        if submit(form, lambda data: users.update_user(actor=request.user, user=person, **data)):
            messages.success(request, f"User {person.username} saved.")
            return redirect("configuration-user", pk=person.pk)
        status = 400
    return render(
        request,
        "portal/configuration/user_detail.html",
        {
            "person": person,
            "form": form,
            "teams": person.teams.select_related("space"),
            "may_edit": has_permission(request.user, P.USER_EDIT),
        },
        status=status,
    )


# Teams ----------------------------------------------------------------------------------------


def _editable_spaces(user):
    return Space.objects.filter(
        pk__in=[s.pk for s in spaces_visible_to(user) if has_permission(user, P.TEAM_EDIT, space=s)]
    )


@login_required
def team_list(request):
    visible = teams.teams_visible_to(request.user)
    editable_spaces = _editable_spaces(request.user)
    may_create = editable_spaces.exists() or has_permission(request.user, P.CONFIGURE_SERVER)
    if not visible.exists() and not may_create:
        require_permission(request.user, P.USER_VIEW)  # 403 with the reason
    form, status = TeamForm(spaces=editable_spaces), 200
    if request.method == "POST":
        form = TeamForm(request.POST, spaces=editable_spaces)

        def create(data):
            teams.require_team_edit(request.user, data["space"])
            return teams.create_team(
                actor=request.user, name=data["name"], description=data["description"], space=data["space"]
            )

        if team := submit(form, create):
            messages.success(request, f"Team {team.name} created.")
            return redirect("configuration-team", pk=team.pk)
        status = 400
    rows = visible.select_related("space").annotate(member_count=Count("members", distinct=True)).order_by("name")
    return render(
        request,
        "portal/configuration/teams.html",
        {"teams": rows, "form": form, "may_create": may_create},
        status=status,
    )


def _visible_team(user, pk: int) -> Team:
    return get_object_or_404(teams.teams_visible_to(user).select_related("space"), pk=pk)


def _may_edit_team(user, team: Team) -> bool:
    try:
        teams.require_team_edit(user, team.space)
    except Exception:
        return False
    return True


@login_required
def team_detail(request, pk: int):
    team = _visible_team(request.user, pk)
    return render(request, "portal/configuration/team_detail.html", _team_context(request, team))


def _team_context(request, team, **extra):
    context = {
        "team": team,
        "members": team.members.order_by("username"),
        "roles": ScopedUserRole.objects.filter(team=team).select_related("role", "space"),
        "member_form": TeamMemberForm(),
        "role_form": RoleAssignmentForm(team=team),
        "team_form": TeamForm(
            initial={"name": team.name, "description": team.description}, spaces=Space.objects.none()
        ),
        "may_edit": _may_edit_team(request.user, team),
    }
    context.update(extra)
    return context


def _team_post(request, pk: int):
    team = _visible_team(request.user, pk)
    teams.require_team_edit(request.user, team.space)
    return team


@login_required
@require_POST
def team_edit(request, pk: int):
    team = _team_post(request, pk)
    form = TeamForm(request.POST, spaces=Space.objects.none())
    if submit(
        form,
        lambda data: teams.update_team(
            actor=request.user, team=team, name=data["name"], description=data["description"]
        ),
    ):
        messages.success(request, "Team saved.")
        return redirect("configuration-team", pk=team.pk)
    return render(
        request, "portal/configuration/team_detail.html", _team_context(request, team, team_form=form), status=400
    )


@login_required
@require_POST
def team_add_member(request, pk: int):
    team = _team_post(request, pk)
    form = TeamMemberForm(request.POST)
    if submit(
        form, lambda data: teams.update_team(actor=request.user, team=team, members=[*team.members.all(), data["user"]])
    ):
        messages.success(request, f"{form.cleaned_data['user'].username} added to {team.name}.")
        return redirect("configuration-team", pk=team.pk)
    return render(
        request, "portal/configuration/team_detail.html", _team_context(request, team, member_form=form), status=400
    )


@login_required
@require_POST
def team_remove_member(request, pk: int, user_pk: int):
    team = _team_post(request, pk)
    try:
        teams.update_team(actor=request.user, team=team, members=list(team.members.exclude(pk=user_pk)))
    except ValidationError as error:
        refuse(request, error)
    return redirect("configuration-team", pk=team.pk)


@login_required
@require_POST
def team_add_role(request, pk: int):
    team = _team_post(request, pk)
    form = RoleAssignmentForm(request.POST, team=team)

    def assign(data):
        if data["space"] is None or team.space is None:
            require_permission(request.user, P.CONFIGURE_SERVER)
        return teams.assign_role(actor=request.user, team=team, role=data["role"], space=data["space"])

    if submit(form, assign):
        messages.success(request, f"{form.cleaned_data['role'].name} granted to {team.name}.")
        return redirect("configuration-team", pk=team.pk)
    return render(
        request, "portal/configuration/team_detail.html", _team_context(request, team, role_form=form), status=400
    )


@login_required
@require_POST
def team_remove_role(request, pk: int, role_pk: int):
    team = _team_post(request, pk)
    scoped = get_object_or_404(ScopedUserRole, pk=role_pk, team=team)
    try:
        teams.remove_role(actor=request.user, scoped_role=scoped)
    except ValidationError as error:
        refuse(request, error)
    return redirect("configuration-team", pk=team.pk)


@login_required
@require_POST
def team_delete(request, pk: int):
    team = _team_post(request, pk)
    try:
        teams.delete_team(actor=request.user, team=team)
    except ValidationError as error:
        refuse(request, error)
        return redirect("configuration-team", pk=team.pk)
    messages.success(request, f"Team {team.name} deleted.")
    return redirect("configuration-teams")


# Spaces ---------------------------------------------------------------------------------------


@login_required
def space_list(request):
    visible = spaces_visible_to(request.user)
    may_create = has_permission(request.user, P.SPACE_CREATE)
    form, status = SpaceForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.SPACE_CREATE)
        form = SpaceForm(request.POST)
        if space := submit(form, lambda data: spaces.create_space(actor=request.user, **data)):
            messages.success(request, f"Space {space.name} created.")
            return redirect("configuration-spaces")
        status = 400
    return render(
        request,
        "portal/configuration/spaces.html",
        {"spaces": visible, "form": form, "may_create": may_create},
        status=status,
    )


# Audit ----------------------------------------------------------------------------------------


@login_required
def audit(request):
    spaces_with_view = Space.objects.filter(
        pk__in=[s.pk for s in spaces_visible_to(request.user) if has_permission(request.user, P.EVENT_VIEW, space=s)]
    )
    if not spaces_with_view.exists() and not has_permission(request.user, P.USER_VIEW):
        require_permission(request.user, P.EVENT_VIEW, space=Space.objects.default())
    form = AuditFilterForm(request.GET or None, spaces=spaces_with_view)
    events = events_visible_to(request.user)
    status = 200
    if form.is_bound:
        if form.is_valid():
            f = form.cleaned_data
            if f["space"]:
                events = events.filter(space=f["space"])
            if f["user"]:
                events = events.filter(username__iexact=f["user"])
            if f["category"]:
                events = events.filter(category=f["category"])
            if f["document_type"]:
                events = events.filter(document_type__iexact=f["document_type"])
            if f["since"]:
                events = events.filter(occurred__gte=f["since"])
            if f["until"]:
                events = events.filter(occurred__lte=f["until"])
            if f["q"]:
                events = events.filter(message__icontains=f["q"])
        else:
            events, status = events.none(), 400
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    querystring = request.GET.copy()
    querystring.pop("page", None)
    return render(
        request,
        "portal/configuration/audit.html",
        {"form": form, "page": page, "querystring": querystring.urlencode()},
        status=status,
    )


# Server certificate ---------------------------------------------------------------------------


@login_required
def server_certificate(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    if request.method == "POST":
        require_permission(request.user, P.ADMINISTER_SYSTEM)
        new = rotate_server_certificate(actor=request.user)
        messages.warning(
            request,
            f"New server thumbprint {new.thumbprint}. Agents must trust it again "
            "(tentacle configure --trust) before they connect.",
        )
        return redirect("configuration-certificate")
    return render(
        request,
        "portal/configuration/certificate.html",
        {"certificate": current_server_certificate(), "may_rotate": has_permission(request.user, P.ADMINISTER_SYSTEM)},
    )
