"""What the dashboard shows: each app contributes cards for what the user may see."""

from __future__ import annotations

from portal.models import Space, User

# Callables (user, space) -> list of {"title", "value", "detail", "url"}; apps register theirs at start-up.
card_providers: list = []


def cards_for(user: User, space: Space) -> list[dict]:
    cards: list[dict] = []
    for provider in card_providers:
        cards.extend(provider(user, space))
    return cards
