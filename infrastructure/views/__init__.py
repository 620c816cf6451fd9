"""Infrastructure pages: Worker Pools, Workers (and the Add Worker wizard), Machine Policies, Accounts.

Views are thin (STYLE 6): the space comes from `space_page` (404 if not visible, 403 without the view
permission), objects are looked up within that space (404 otherwise), writes check the edit permission,
then call one service through `portal.views.forms.submit`: its ValidationError becomes a form error (400), or
for a button a refusal message (`refuse`).
"""
