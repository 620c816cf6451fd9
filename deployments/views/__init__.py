"""Deployments pages, one module per concern: projects, the process editor, variables, releases and deploying,
runbooks, Library ➜ Packages, tasks (and the Script Console), Infrastructure ➜ Environments and Deployment
Targets, and Configuration ➜ Features and Nodes.

Thin views (STYLE 6): `space_page` gives the space (404 if not visible, 403 without the view permission),
objects are looked up within it (404 otherwise), writes check their permission, then call one service through
`portal.views.forms.submit`: a ValidationError becomes a form error (400) or, for a button, a refusal message;
a PermissionDenied from the deploy services (a pool the user's teams may not use) becomes a message naming the pool.
"""
