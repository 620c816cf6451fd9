"""A multi-line Sensitive value (a PEM key, a JSON credential) never shows in the task log: not whole, not
line by line, whether the script prints it or the server writes it; short lines such as `}` stay readable."""

import pytest

from deployments.services import catalog, deploy
from servertasks.services.tasklog import TaskLog
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "-----BEGIN KEY-----\nc2VjcmV0LWxpbmUtb25l\nc2VjcmV0LWxpbmUtdHdv\n}\n-----END KEY-----"


def test_a_script_printing_a_multi_line_secret_shows_none_of_its_lines(administrator, project, production):
    catalog.save_variable(actor=administrator, project=project, name="Key", type="Sensitive", value=SECRET)
    add_step(
        project,
        "Print",
        'echo "#{Key}"\nprintf "%s\\n" "$(get_octopusvariable Key)" | tail -n 3 | head -n 1\n'
        'echo "second: c2VjcmV0LWxpbmUtdHdv"\necho "}"',
    )
    task = deploy_and_run(administrator, project, production)
    text = log_text(task)
    assert task.state == "Success", text
    for line in SECRET.splitlines()[:3] + SECRET.splitlines()[4:]:
        assert line not in text
    assert "second: ********" in text
    assert "\n}" in text  # a one-character line of the secret is no secret


def test_lines_the_server_writes_are_masked_line_by_line(administrator, project, production):
    catalog.save_variable(actor=administrator, project=project, name="Key", type="Sensitive", value=SECRET)
    add_step(project, "Nothing", "true")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    log = TaskLog(task, sensitive_values=[SECRET])
    log.write("server says c2VjcmV0LWxpbmUtb25l and the whole " + SECRET)
    log.flush()
    text = log_text(task)
    assert "c2VjcmV0LWxpbmUtb25l" not in text and "server says ********" in text
