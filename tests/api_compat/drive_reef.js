// Drives a live Reef with Octopus Deploy's official API client, as a CI pipeline would, and prints what it saw
// as one JSON document. Arguments come from the environment: REEF_URL, REEF_API_KEY, REEF_POOL_ID, REEF_PACKAGE.
"use strict";

const {
  Client, EnvironmentRepository, ProjectGroupRepository, LifecycleRepository, ProjectRepository, DeploymentProcessRepository,
  ReleaseRepository, DeploymentRepository, ServerTaskWaiter, SpaceServerTaskRepository, RunbookRepository,
  RunbookProcessRepository, RunbookSnapshotRepository, RunbookRunRepository, PackageRepository,
} = require("@octopusdeploy/api-client");

const SPACE = "Default";
const seen = {};

function scriptStep(name, body, poolId) {
  return {
    Name: name, Condition: "Success", StartTrigger: "StartAfterPrevious", PackageRequirement: "LetOctopusDecide",
    Properties: { "Octopus.Action.MaxParallelism": "1" },
    Actions: [{
      Name: name, ActionType: "Octopus.Script", IsDisabled: false, WorkerPoolId: poolId, WorkerPoolVariable: null, Packages: [],
      Properties: {
        "Octopus.Action.RunOnServer": "true", "Octopus.Action.Script.ScriptSource": "Inline",
        "Octopus.Action.Script.Syntax": "Bash", "Octopus.Action.Script.ScriptBody": body,
      },
    }],
  };
}

async function refusal(promise) {
  try {
    await promise;
  } catch (error) {
    return { status: error.StatusCode || error.statusCode, message: String(error.message || error), errors: error.Errors || [] };
  }
  return null;
}

async function main() {
  const client = await Client.create({ instanceURL: process.env.REEF_URL, apiKey: process.env.REEF_API_KEY, userAgentApp: "reef-api-compat" });
  const spaceId = (await client.get("~/api/spaces?partialName=Default")).Items[0].Id;
  const poolId = process.env.REEF_POOL_ID;
  const waiter = new ServerTaskWaiter(client, SPACE);
  const tasks = new SpaceServerTaskRepository(client, SPACE);

  // Environments, a group, a lifecycle with two phases -----------------------------------------------------
  const environments = new EnvironmentRepository(client, SPACE);
  const dev = await environments.create({ Name: "Dev" });
  const prod = await environments.create({ Name: "Prod" });
  const group = await new ProjectGroupRepository(client, SPACE).create({ Name: "Compat group" });
  const lifecycle = await new LifecycleRepository(client, SPACE).create({
    Name: "Dev then Prod", Phases: [
      { Name: "Development", AutomaticDeploymentTargets: [], OptionalDeploymentTargets: [dev.Id], MinimumEnvironmentsBeforePromotion: 0, IsOptionalPhase: false },
      { Name: "Production", AutomaticDeploymentTargets: [], OptionalDeploymentTargets: [prod.Id], MinimumEnvironmentsBeforePromotion: 0, IsOptionalPhase: false },
    ],
  });
  seen.lifecyclePhases = lifecycle.Phases.map((p) => p.Name);
  const projects = new ProjectRepository(client, SPACE);
  const project = await projects.create({ Name: "Compat shop", ProjectGroupId: group.Id, LifecycleId: lifecycle.Id });
  seen.project = { Slug: project.Slug, ProjectGroupId: project.ProjectGroupId, LifecycleId: project.LifecycleId,
    groupId: group.Id, lifecycleId: lifecycle.Id, VariableSetId: project.VariableSetId, DeploymentProcessId: project.DeploymentProcessId };

  // Variables ------------------------------------------------------------------------------------------------
  const variableSetUrl = `~/api/${spaceId}/variables/${project.VariableSetId}`;
  const variables = await client.get(variableSetUrl);
  variables.Variables.push({ Name: "Greeting", Value: "hello-from-dev", Scope: { Environment: [dev.Id] }, Type: "String", IsSensitive: false });
  variables.Variables.push({ Name: "Greeting", Value: "hello-from-prod", Scope: { Environment: [prod.Id] }, Type: "String", IsSensitive: false });
  variables.Variables.push({ Name: "ApiToken", Value: "tok-5ecret-value", Scope: {}, Type: "Sensitive", IsSensitive: true });
  const savedVariables = await client.doUpdate(variableSetUrl, variables);
  seen.variables = { before: variables.Version, after: savedVariables.Version,
    sensitiveValues: savedVariables.Variables.filter((v) => v.IsSensitive).map((v) => v.Value) };

  // The process: one script step on the worker pool -------------------------------------------------------------
  const processes = new DeploymentProcessRepository(client, SPACE);
  const process_ = await processes.get(project);
  process_.Steps = [scriptStep("Greet", 'echo "#{Greeting} in #{Octopus.Environment.Name} on #{Octopus.Worker.Name}"; echo "token #{ApiToken}"', poolId)];
  const savedProcess = await processes.update(project, process_);
  seen.process = { before: process_.Version, after: savedProcess.Version, workerPoolId: savedProcess.Steps[0].Actions[0].WorkerPoolId };
  seen.staleProcess = await refusal(processes.update(project, { ...process_, Version: process_.Version }));

  // A release, refused in Prod until Dev succeeded, then deployed ----------------------------------------------
  const releases = new ReleaseRepository(client, SPACE);
  const release = await releases.create({ spaceName: SPACE, ProjectName: project.Name, ReleaseVersion: "1.0.0" });
  seen.release = release;
  const deployments = new DeploymentRepository(client, SPACE);
  seen.promotionRefused = await refusal(deployments.create({ spaceName: SPACE, ProjectName: project.Name, ReleaseVersion: "1.0.0", EnvironmentNames: ["Prod"] }));
  const devDeployment = await deployments.create({ spaceName: SPACE, ProjectName: project.Name, ReleaseVersion: "1.0.0", EnvironmentNames: ["Dev"] });
  const devTaskId = devDeployment.DeploymentServerTasks[0].ServerTaskId;
  const devTask = await waiter.waitForServerTaskToComplete(devTaskId, 500, 90000);
  const details = await tasks.getDetails(devTaskId);
  seen.dev = { state: devTask.State, raw: await tasks.getRaw(devTaskId), activityNames: details.ActivityLogs.map((a) => a.Name),
    detailsState: details.Task.State };
  const prodDeployment = await deployments.create({ spaceName: SPACE, ProjectName: project.Name, ReleaseVersion: "1.0.0", EnvironmentNames: ["Prod"] });
  const prodTask = await waiter.waitForServerTaskToComplete(prodDeployment.DeploymentServerTasks[0].ServerTaskId, 500, 90000);
  seen.prod = { state: prodTask.State, raw: await tasks.getRaw(prodTask.Id) };
  seen.releaseByVersion = (await client.get(`~/api/${spaceId}/projects/${project.Slug}/releases/1.0.0`)).Id;

  // A runbook: its process, a published snapshot, a run ----------------------------------------------------------
  const runbooks = new RunbookRepository(client, SPACE, project);
  const runbook = await runbooks.create({ Name: "Flush cache", ProjectId: project.Id, Description: "" });
  const runbookProcesses = new RunbookProcessRepository(client, SPACE, project);
  const runbookProcess = await runbookProcesses.get(runbook);
  runbookProcess.Steps = [scriptStep("Flush", 'echo "flushed in #{Octopus.Environment.Name}"', poolId)];
  await runbookProcesses.update(runbookProcess);
  const snapshot = await new RunbookSnapshotRepository(client, SPACE, project).create(runbook, "Snapshot A", true);
  const run = await new RunbookRunRepository(client, SPACE).create({ spaceName: SPACE, ProjectName: project.Name, RunbookName: runbook.Name, EnvironmentNames: ["Dev"] });
  const runTask = await waiter.waitForServerTaskToComplete(run.RunbookRunServerTasks[0].ServerTaskId, 500, 90000);
  seen.runbook = { snapshot: snapshot.Name, state: runTask.State, raw: await tasks.getRaw(runTask.Id) };

  // A manual intervention: take responsibility, then proceed with a note ----------------------------------------
  const gate = await projects.create({ Name: "Compat gate", ProjectGroupId: group.Id, LifecycleId: lifecycle.Id });
  const gateProcess = await processes.get(gate);
  gateProcess.Steps = [
    { Name: "Approve", Condition: "Success", StartTrigger: "StartAfterPrevious", PackageRequirement: "LetOctopusDecide", Properties: {},
      Actions: [{ Name: "Approve", ActionType: "Octopus.Manual", IsDisabled: false, WorkerPoolId: null, Packages: [],
        Properties: { "Octopus.Action.RunOnServer": "true", "Octopus.Action.Manual.Instructions": "Check the dashboard" } }] },
    scriptStep("After approval", 'echo "approved and running"', poolId),
  ];
  await processes.update(gate, gateProcess);
  await releases.create({ spaceName: SPACE, ProjectName: gate.Name, ReleaseVersion: "2.0.0" });
  const gateDeployment = await deployments.create({ spaceName: SPACE, ProjectName: gate.Name, ReleaseVersion: "2.0.0", EnvironmentNames: ["Dev"] });
  const gateTaskId = gateDeployment.DeploymentServerTasks[0].ServerTaskId;
  let interruptions;
  for (let i = 0; i < 300; i++) {
    interruptions = await client.get(`~/api/${spaceId}/interruptions?regarding=${gateTaskId}&pendingOnly=true`);
    if (interruptions.Items.length) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const interruption = interruptions.Items[0];
  const taken = await client.doUpdate(`~/api/${spaceId}/interruptions/${interruption.Id}/responsible`, {});
  await client.post(`~/api/${spaceId}/interruptions/${interruption.Id}/submit`, { Instructions: null, Notes: "Dashboard is green", Result: "Proceed" });
  const gateTask = await waiter.waitForServerTaskToComplete(gateTaskId, 500, 90000);
  const answered = await client.get(`~/api/${spaceId}/interruptions/${interruption.Id}`);
  seen.interruption = { title: interruption.Title, taken: taken.HasResponsibility, pendingAfter: answered.IsPending,
    notes: answered.Form.Values.Notes, result: answered.Form.Values.Result, state: gateTask.State, raw: await tasks.getRaw(gateTaskId) };

  // A package pushed to the built-in feed ----------------------------------------------------------------------
  const feeds = await client.get(`~/api/${spaceId}/feeds`);
  seen.feeds = feeds.Items.map((f) => ({ Id: f.Id, FeedType: f.FeedType }));
  await new PackageRepository(client, SPACE).push([process.env.REEF_PACKAGE]);
  const packages = await client.get(`~/api/${spaceId}/packages?filter=compat-app`);
  seen.packages = packages.Items.map((p) => ({ PackageId: p.PackageId, Version: p.Version }));
  seen.serverStatus = (await client.get("~/api/serverstatus")).IsInMaintenanceMode;
}

main().then(
  () => { process.stdout.write(JSON.stringify(seen)); },
  (error) => {
    process.stdout.write(JSON.stringify(seen));
    process.stderr.write(`FAILED: ${error && (error.stack || error.message || error)}\n${JSON.stringify(error && error.Errors || error && error.response && error.response.data || "")}\n`);
    process.exit(1);
  },
);
