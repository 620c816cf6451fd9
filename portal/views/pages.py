"""Dashboard, profile and API keys."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.forms import ApiKeyForm, ProfileForm
from portal.models import ApiKey, Event
from portal.services import api_keys, dashboard_cards, users
from portal.services.access import permissions_of, spaces_visible_to
from portal.services.audit import events_visible_to
from portal.views.decorators import space_page
from portal.views.forms import submit


@login_required
def home(request):
    space = spaces_visible_to(request.user).order_by("-is_default", "name").first()
    if space is None:
        messages.info(request, "You do not have access to any space yet. Ask an administrator to add you to a team.")
        return redirect("profile")
    return redirect("dashboard", space_id=space.octopus_id)


@space_page()
def dashboard(request, space):
    context = {
        "space": space,
        "cards": dashboard_cards.cards_for(request.user, space),
        "recent_events": events_visible_to(request.user).filter(space=space)[:10],
        "permissions": sorted(permissions_of(request.user, space)),
    }
    return render(request, "portal/dashboard.html", context)


@login_required
def profile(request):
    user = request.user
    form = ProfileForm(initial={"display_name": user.display_name, "email": user.email})
    status = 200
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if submit(
            form,
            lambda data: users.update_user(
                actor=user, user=user, display_name=data["display_name"], email=data["email"]
            ),
        ):
            messages.success(request, "Profile saved.")
            return redirect("profile")
        status = 400
    return render(request, "portal/profile.html", _profile_context(request, form=form), status=status)


def _profile_context(request, **extra):
    context = {
        "form": ProfileForm(initial={"display_name": request.user.display_name, "email": request.user.email}),
        "api_key_form": ApiKeyForm(),
        "api_keys": ApiKey.objects.filter(user=request.user, revoked__isnull=True),
        "events": Event.objects.filter(user=request.user)[:10],
    }
    context.update(extra)
    return context


@login_required
@require_POST
def api_key_create(request):
    form = ApiKeyForm(request.POST)
    if created := submit(
        form,
        lambda data: api_keys.create_api_key(
            actor=request.user, user=request.user, purpose=data["purpose"], expires=data["expires"]
        ),
    ):
        api_key, plain = created
        # Rendered straight into this response, never stored: the one and only time it is shown.
        response = render(request, "portal/api_key_created.html", {"api_key": api_key, "plain_key": plain})
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "portal/profile.html", _profile_context(request, api_key_form=form), status=400)


@login_required
@require_POST
def api_key_revoke(request, pk: int):
    api_key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_keys.revoke_api_key(actor=request.user, api_key=api_key)
    messages.success(request, f"API key {api_key.purpose!r} revoked.")
    return redirect("profile")
