"""Scripts as Octopus users write them: helpers without imports in Bash and Python, output variables both ways,
Octostache substitution in scripts and variable values, secrets masked however they were derived."""

import base64
import shutil

import pytest

from deployments.models import Artifact, Package, Variable
from deployments.services.orchestrator import script_from_package
from portal.encryption import encrypt
from servertasks.models import ActivityNode, TaskLogLine
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "Tr0ub4dor-Secret"

BASH = r"""
echo "greeting=#{Greeting | ToUpper}"
echo "from-python-in-bash=$(get_octopusvariable 'Octopus.Action[Python].Output.FromPython')"
echo "substituted=#{Octopus.Action[Python].Output.FromPython}"
write_verbose "a verbose line"
write_highlight "a highlighted line"
write_wait "a waiting line"
write_warning "a warning line"
update_progress 40 "Halfway-ish"
echo "content" > "art-#{DbPassword}.txt"
new_octopusartifact "art-#{DbPassword}.txt"
set_octopusvariable FromBash "bash-value"
set_octopusvariable BashSecret "bash-Secret-42" -sensitive
echo "leak attempt: bash-Secret-42"
echo "encoded #{DbPassword | ToBase64}"
"""

PYTHON = r"""
print("bash-said=" + get_octopusvariable("Octopus.Action[Bash].Output.FromBash"))
print("substituted=#{Octopus.Action[Bash].Output.FromBash}")
print("bash-secret=" + get_octopusvariable("Octopus.Action[Bash].Output.BashSecret"))
print("nested=" + get_octopusvariable("Nested"))
write_verbose("py verbose")
write_highlight("py highlight")
write_wait("py wait")
write_warning("py warning")
update_progress(75, "Nearly there")
with open("report.txt", "w") as f:
    f.write("report")
new_octopusartifact("report.txt", "report.txt")
set_octopusvariable("FromPython", "python-value")
set_octopusvariable("PySecret", "py-Secret-99", sensitive=True)
print("py leak: py-Secret-99")
#{each colour in Colours}print("colour #{colour} #{Octopus.Template.Each.Index}")
#{/each}
"""


def category_of(task, text):
    from servertasks.services import logstore

    return next((line.category for line in logstore.iter_lines(task_id=task.pk) if line.text == text), None)


def test_bash_and_python_steps_use_every_helper_without_imports_and_pass_output_variables_both_ways(
    administrator, project, production
):
    Variable.objects.create(project=project, name="Greeting", value="hello #{Octopus.Environment.Name}")
    Variable.objects.create(project=project, name="DbPassword", type="Sensitive", value=encrypt(SECRET))
    Variable.objects.create(project=project, name="Nested", value="#{Greeting | Trim} / #{DbPassword | ToUpper}")
    Variable.objects.create(project=project, name="Colours", value="red,green")
    add_step(project, "Python", 'set_octopusvariable("FromPython", "early-python")\nprint("first")', syntax="Python")
    add_step(project, "Bash", BASH)
    add_step(project, "Python again", PYTHON, syntax="Python")
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log

    # Substitution: nested values in the environment's scope, filters, loops.
    assert "greeting=HELLO PRODUCTION" in log
    assert "from-python-in-bash=early-python" in log and "substituted=early-python" in log
    assert "bash-said=bash-value" in log and "substituted=bash-value" in log
    assert "colour red 0" in log and "colour green 1" in log
    # Secrets, and values derived from them, never reach the log or the artifact names.
    encoded = base64.b64encode(SECRET.encode()).decode()
    for secret in (SECRET, SECRET.upper(), encoded, "bash-Secret-42", "py-Secret-99"):
        assert secret not in log, secret
    assert "encoded ********" in log and "leak attempt: ********" in log and "py leak: ********" in log
    assert "bash-secret=********" in log and "nested=hello Production / ********" in log
    names = sorted(Artifact.objects.filter(task=task).values_list("name", flat=True))
    assert names == ["art-********.txt", "report.txt"]
    # Categories from write_*.
    assert category_of(task, "a verbose line") == TaskLogLine.Category.VERBOSE
    assert category_of(task, "a highlighted line") == TaskLogLine.Category.HIGHLIGHT
    assert category_of(task, "a waiting line") == TaskLogLine.Category.WAIT
    assert category_of(task, "a warning line") == TaskLogLine.Category.WARNING
    assert category_of(task, "py highlight") == TaskLogLine.Category.HIGHLIGHT
    assert category_of(task, "py wait") == TaskLogLine.Category.WAIT
    # update_progress moved each worker node's progress.
    progress = dict(
        ActivityNode.objects.filter(
            task=task, parent__parent__parent__isnull=True, parent__parent__isnull=False
        ).values_list("parent__name", "progress")
    )
    assert progress["Step 2: Bash"] == 40 and progress["Step 3: Python again"] == 75
    assert "Halfway-ish (40%)" in log


def test_fail_step_logs_its_message_once_and_fails_the_step(administrator, project, production):
    add_step(project, "Bash fails", 'fail_step "Database is read-only"\necho never')
    add_step(
        project, "Python fails", 'fail_step("Python says no")\nprint("never")', syntax="Python", condition="Always"
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Failed"
    assert log.count("Database is read-only") == 1 and log.count("Python says no") == 1 and "never" not in log
    assert category_of(task, "Database is read-only") == TaskLogLine.Category.ERROR


def test_a_reference_cycle_fails_the_step_saying_which_variables(administrator, project, production):
    Variable.objects.create(project=project, name="A", value="#{B}")
    Variable.objects.create(project=project, name="B", value="x#{A}")
    add_step(project, "Loops", 'echo "#{A}"')
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "The variable 'A' refers to itself: A → B → A." in log_text(task)


def test_run_conditions_use_the_same_engine(administrator, project, production):
    Variable.objects.create(project=project, name="Env", value="#{Octopus.Environment.Name}")
    add_step(
        project,
        "Only in production",
        "echo production-only",
        condition="Variable",
        condition_variable='#{if Env == "Production"}True#{/if}',
    )
    add_step(
        project,
        "Only in staging",
        "echo staging-only",
        condition="Variable",
        condition_variable='#{if Env == "Staging"}True#{else}False#{/if}',
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success" and "production-only" in log and "staging-only" not in log


def test_a_script_can_come_from_a_file_inside_a_referenced_package(
    administrator, project, production, space, tmp_path, settings
):
    import hashlib
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "scripts/deploy.sh", 'echo "from the package: $1 $(get_octopusvariable Octopus.Environment.Name)"\n'
        )
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    folder = tmp_path / "var"
    (folder / "packages").mkdir(parents=True)
    (folder / "packages" / digest).write_bytes(data)
    settings.VAR_DIR = folder
    Package.objects.create(
        space=space, package_id="tools", version="1.0.0", file_name="tools.1.0.0.zip", sha256=digest, size=len(data)
    )
    add_step(
        project,
        "From package",
        "",
        script_source="Package",
        script_file_name="scripts/deploy.sh",
        packages=[{"PackageId": "tools", "Version": "1.0.0"}],
        script_parameters="#{Octopus.Release.Number}",
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    assert "from the package: 0.0.1 Production" in log


def test_a_package_script_outside_its_package_is_refused():
    step = {
        "Name": "Sneaky",
        "Syntax": "Bash",
        "Packages": [{"PackageId": "tools"}],
        "ScriptFileName": "../../etc/passwd",
    }
    with pytest.raises(Exception, match="name the script file"):
        script_from_package(step)


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell (pwsh) is not installed on this machine")
def test_powershell_steps_have_the_octopus_cmdlets(administrator, project, production):
    add_step(
        project,
        "PowerShell",
        'Set-OctopusVariable -name "Colour" -value "blue"\nWrite-Highlight "hi"\n'
        'Update-Progress -percentage 50 -message "half"\nWrite-Host $OctopusParameters["Octopus.Environment.Name"]',
        syntax="PowerShell",
    )
    add_step(project, "Bash", 'echo "colour=#{Octopus.Action[PowerShell].Output.Colour}"')
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    assert "colour=blue" in log and "Production" in log and category_of(task, "hi") == TaskLogLine.Category.HIGHLIGHT


def test_on_a_listening_agent_too(agents, administrator, project, production, make_pool):
    pool = make_pool("Agents")
    agents.start("agent-one", [pool])
    Variable.objects.create(project=project, name="DbPassword", type="Sensitive", value=encrypt(SECRET))
    add_step(
        project,
        "Py",
        'update_progress(50, "half")\nopen("out-#{DbPassword | ToLower}.txt", "w").write("x")\n'
        'new_octopusartifact("out-#{DbPassword | ToLower}.txt")\n'
        'set_octopusvariable("Said", "#{DbPassword | ToLower}")\n'
        'print("lower #{DbPassword | ToLower}")',
        syntax="Python",
        worker_pool=pool,
    )
    add_step(project, "Sh", 'echo "said=$(get_octopusvariable Octopus.Action[Py].Output.Said)"', worker_pool=pool)
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    assert SECRET.lower() not in log and "lower ********" in log and "said=********" in log
    assert list(Artifact.objects.filter(task=task).values_list("name", flat=True)) == ["out-********.txt"]
    assert ActivityNode.objects.filter(task=task, name="agent-one", progress=50).exists()
