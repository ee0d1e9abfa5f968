"use strict";
// A first, minimal view over the admin API; the full UI grows in issue 8.
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("baton-token") || "";
tokenInput.addEventListener("change", () => { sessionStorage.setItem("baton-token", tokenInput.value); refresh(); });

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + tokenInput.value } });
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

function row(cells, cls) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c == null ? "" : String(c);
    tr.appendChild(td);
  }
  if (cls) tr.className = cls;
  return tr;
}

async function refresh() {
  if (!tokenInput.value) return;
  const body = document.querySelector("#agents tbody");
  try {
    const agents = await api("/api/v1/agents");
    body.replaceChildren(...agents.map(a => row([a.name, a.id, a.state, a.last_seen])));
  } catch (e) { body.replaceChildren(row([e.message])); }
}

document.getElementById("show").addEventListener("click", async () => {
  const body = document.querySelector("#steps tbody");
  try {
    const run = await api("/api/v1/runs/" + encodeURIComponent(document.getElementById("run").value.trim()));
    body.replaceChildren(...run.steps.map(s => row([s.name, s.state, s.exit_code, s.agent_id], s.state)));
  } catch (e) { body.replaceChildren(row([e.message])); }
});

refresh();
