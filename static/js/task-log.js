// The task page's live log: a collapsible tree of activity nodes with their lines, fed by the websocket
// at /ws/tasks/<id>/ (falling back to polling /api/tasks/<id>/details), exactly once and in order:
// every line carries its sequence and the client resumes after the last one it holds.
(() => {
  const root = document.getElementById("task-log");
  if (!root) return;
  const search = document.getElementById("log-search");
  const follow = document.getElementById("log-follow");
  const status = document.getElementById("log-status");

  const nodes = new Map();        // node id -> {box, lines, badge}
  // A long log shows its newest lines only (the raw download has them all): the page starts after
  // `startAfter` and keeps at most `limit` rows, dropping the oldest.
  const limit = Number(root.dataset.limit || 20000);
  const rows = [];
  const earlier = document.getElementById("log-earlier");
  let lastSequence = Number(root.dataset.startAfter || -1);
  if (earlier && lastSequence >= 0) earlier.hidden = false;
  let ended = false;
  let failures = 0;

  const statusClass = { Success: "success", Failed: "danger", Running: "primary", SuccessWithWarning: "warning",
                        Canceled: "secondary", Skipped: "light", Pending: "light" };

  function nodeBox(id) {
    if (id === null || id === undefined || !nodes.has(id)) return root.querySelector(":scope > .log-lines");
    return nodes.get(id).lines;
  }

  function upsertNode(node) {
    let entry = nodes.get(node.Id);
    if (!entry) {
      const box = document.createElement("details");
      box.open = true;
      box.className = "log-node";
      box.dataset.nodeId = node.Id;
      const summary = document.createElement("summary");
      const name = document.createElement("span");
      name.className = "log-node-name";
      const state = document.createElement("span");
      state.className = "badge ms-2";
      const progress = document.createElement("span");  // update_progress from the script, live
      progress.className = "log-node-progress small text-muted ms-2";
      summary.append(name, state, progress);
      const lines = document.createElement("div");
      lines.className = "log-lines";
      box.append(summary, lines);
      const parent = node.ParentId && nodes.has(node.ParentId) ? nodes.get(node.ParentId).lines : root;
      parent.append(box);
      entry = { box, lines, name, state, progress };
      nodes.set(node.Id, entry);
    }
    entry.name.textContent = node.Name;
    entry.state.textContent = node.Status;
    entry.state.className = `badge ms-2 text-bg-${statusClass[node.Status] || "secondary"}`;
    entry.box.dataset.status = node.Status;
    const running = node.Progress !== null && node.Progress !== undefined && node.Status === "Running";
    entry.progress.textContent = running ? `${node.Progress}%` : "";
    entry.box.dataset.progress = running ? node.Progress : "";
  }

  function matches(text) {
    const term = search.value.trim().toLowerCase();
    return !term || text.toLowerCase().includes(term);
  }

  function addLines(lines) {
    for (const line of lines) {
      if (line.Sequence <= lastSequence) continue;  // never twice
      const row = document.createElement("div");
      row.className = `log-line log-${line.Category}`;
      row.dataset.sequence = line.Sequence;
      const time = document.createElement("time");
      time.textContent = (line.Occurred || "").slice(11, 19);
      row.append(time, document.createTextNode(line.Text));
      row.hidden = !matches(line.Text);
      // Chronological within a node: after children that already spoke, before those that have not yet.
      const box = nodeBox(line.NodeId);
      box.insertBefore(row, box.querySelector(":scope > details.log-node:not([data-first-sequence])"));
      for (let node = box.closest("details.log-node"); node && !node.dataset.firstSequence; node = node.parentElement.closest("details.log-node")) {
        node.dataset.firstSequence = line.Sequence;
      }
      lastSequence = line.Sequence;
      rows.push(row);
    }
    if (rows.length > limit) {
      rows.splice(0, rows.length - limit).forEach((row) => row.remove());
      if (earlier) earlier.hidden = false;
    }
    root.dataset.lastSequence = lastSequence;
    if (follow.checked) window.scrollTo(0, document.body.scrollHeight);
  }

  function setState(message) {
    const badge = document.querySelector("#task-state-box .task-state");
    if (badge) badge.textContent = message.State;
    if (message.IsCompleted && root.dataset.completed !== "true") {
      root.dataset.completed = "true";
      if (window.htmx) htmx.ajax("GET", location.pathname, { target: "#task-body", swap: "innerHTML" });  // the summary's final word
    }
  }

  function handle(message) {
    if (message.type === "lines") addLines(message.lines);
    else if (message.type === "tree") message.nodes.forEach(upsertNode);
    else if (message.type === "node") upsertNode(message.node);
    else if (message.type === "state") setState(message);
    else if (message.type === "end") { ended = true; status.textContent = "Complete"; }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}`);
    socket.onopen = () => { failures = 0; status.textContent = "Live"; socket.send(JSON.stringify({ after: lastSequence })); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      handle(message);
      if (message.type === "lines") socket.send(JSON.stringify({ ack: lastSequence }));
    };
    socket.onclose = (event) => {
      if (ended) return;
      if (event.code >= 4400 && event.code < 4500) { status.textContent = "You may not watch this task."; return; }
      failures += 1;
      if (failures > 3) { poll(); return; }
      status.textContent = "Reconnecting…";
      setTimeout(connect, Math.min(5000, 300 * 2 ** failures));
    };
  }

  const PAGE = 2000;

  async function poll() {
    // Without websockets: the details API, asked only for lines after the last one held.
    status.textContent = "Live (polling)";
    while (!ended) {
      let more = false;
      try {
        const response = await fetch(`${root.dataset.detailsUrl}?after=${lastSequence}&take=${PAGE}`, { credentials: "same-origin" });
        const details = await response.json();
        const found = [];
        const walk = (node, parentId) => {
          const id = Number(node.Id.split("_").pop());
          if (!Number.isNaN(id)) {
            upsertNode({ Id: id, ParentId: parentId, Name: node.Name, Status: node.Status, Progress: node.ProgressPercentage });
          }
          node.LogElements.forEach((e) => found.push({ Sequence: e.Sequence, Category: e.Category, Text: e.MessageText,
                                                       Occurred: e.OccurredAt, NodeId: Number.isNaN(id) ? null : id }));
          node.Children.forEach((child) => walk(child, Number.isNaN(id) ? null : id));
        };
        details.ActivityLogs.forEach((node) => walk(node, null));
        addLines(found.sort((a, b) => a.Sequence - b.Sequence));
        more = found.length === PAGE;  // a long log: fetch the next page at once
        setState(details.Task);
        if (details.Task.IsCompleted && found.length === 0) { ended = true; status.textContent = "Complete"; }
      } catch (error) { status.textContent = "Waiting for the server…"; }
      if (!more) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  search.addEventListener("input", () => {
    let shown = 0;
    root.querySelectorAll(".log-line").forEach((row) => { row.hidden = !matches(row.lastChild.textContent); shown += row.hidden ? 0 : 1; });
    document.getElementById("log-matches").textContent = search.value.trim() ? `${shown} matching` : "";
  });
  // Following stops when the reader scrolls up (wheel, touch or keys), and resumes at the end of the page.
  const atEnd = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
  window.addEventListener("wheel", (event) => { if (event.deltaY < 0) follow.checked = false; }, { passive: true });
  window.addEventListener("keydown", (event) => { if (["ArrowUp", "PageUp", "Home"].includes(event.key)) follow.checked = false; });
  window.addEventListener("touchmove", () => { if (!atEnd()) follow.checked = false; }, { passive: true });
  window.addEventListener("scroll", () => { if (atEnd()) follow.checked = true; }, { passive: true });

  if ("WebSocket" in window && root.dataset.transport !== "poll") connect(); else poll();
})();
