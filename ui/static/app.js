"use strict";
// Baton's web UI script: confirmations, in-page actions, live updates over
// server-sent events, and the log tail. It never inserts HTML: everything
// from the server is put into the page as text (textContent) or as class
// names, so log content cannot become markup.
(function () {
  const csrf = document.body.dataset.csrf || "";
  const statusEl = document.getElementById("status");

  function say(msg, isError) {
    if (!statusEl) return;
    statusEl.textContent = msg;
    statusEl.className = "status" + (isError ? " error" : " ok");
  }

  // Forms: confirm first when asked; js-action forms post in the background
  // and let the live stream show the result.
  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement)) return;
    const question = (e.submitter && e.submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) { e.preventDefault(); return; }
    if (!form.classList.contains("js-action")) return;
    e.preventDefault();
    const submitter = e.submitter;
    const action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
    const body = new FormData(form);
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const res = await fetch(action, {
        method: "POST", body: new URLSearchParams(body), credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) { say(data.error || ("failed: " + res.status), true); return; }
      say("Done.", false);
      if (data.redirect && data.redirect !== location.pathname + location.search &&
          new URL(data.redirect, location.href).pathname !== location.pathname) {
        location.assign(data.redirect);
      }
    } catch (err) {
      say("Request failed: " + err.message, true);
    } finally {
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });

  // Copy buttons.
  document.addEventListener("click", async (e) => {
    const btn = e.target.closest && e.target.closest("button.copy");
    if (!btn) return;
    const el = document.getElementById(btn.dataset.copy);
    if (!el) return;
    const text = el.value !== undefined && el.tagName === "INPUT" ? el.value : el.textContent;
    try { await navigator.clipboard.writeText(text); say("Copied.", false); }
    catch (_) { if (el.select) el.select(); say("Press Ctrl+C to copy.", false); }
  });

  function live(url, onUpdate) {
    const es = new EventSource(url);
    es.addEventListener("update", (ev) => {
      try { onUpdate(JSON.parse(ev.data)); } catch (err) { say("Live update failed: " + err.message, true); }
    });
    es.addEventListener("failure", (ev) => {
      try { say(JSON.parse(ev.data).error, true); } catch (_) { /* ignore */ }
    });
    return es;
  }

  function setClassPrefix(el, prefix, value) {
    for (const c of Array.from(el.classList)) if (c.startsWith(prefix)) el.classList.remove(c);
    el.classList.add(prefix + value);
  }

  // Fleet page.
  const agents = document.getElementById("agents");
  if (agents && agents.dataset.live) {
    live(agents.dataset.live, (data) => {
      for (const a of data.agents) {
        const row = document.getElementById("agent-" + a.id);
        if (!row) continue;
        const badge = row.querySelector('[data-field="status"]');
        if (badge) { badge.textContent = a.status; setClassPrefix(badge, "s-", a.status); }
        const off = row.querySelector('[data-field="offline"]');
        if (off) off.classList.toggle("hidden", a.connected || a.status === "deleted");
        const seen = row.querySelector('[data-field="last_seen"] time');
        if (seen) seen.textContent = a.last_seen;
        const pool = row.querySelector('[data-field="pool"]');
        if (pool) pool.textContent = a.running + "/" + a.pool;
      }
    });
  }

  // Run page: node and step states, and the log tail.
  const logView = document.getElementById("log-view");
  let logOffset = 0, logBusy = false;
  async function pollLog() {
    if (!logView || logBusy) return;
    logBusy = true;
    try {
      const res = await fetch(logView.dataset.src + (logOffset ? "?offset=" + logOffset : ""),
        { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (!res.ok) return;
      const data = await res.json();
      if (data.offset < logOffset) { logView.replaceChildren(); }
      if (data.truncated) document.getElementById("log-truncated").classList.remove("hidden");
      const atBottom = logView.scrollTop + logView.clientHeight >= logView.scrollHeight - 4;
      for (const [cls, text] of data.segments) {
        const span = document.createElement("span");
        if (cls) span.className = cls;
        span.textContent = text;
        logView.appendChild(span);
      }
      logOffset = data.offset;
      if (atBottom) logView.scrollTop = logView.scrollHeight;
    } finally { logBusy = false; }
  }

  // Timing bars and the run's summary line are drawn by the server: after
  // step states change, fetch this page again and take those two parts
  // (parsed as an inert document; nothing in it runs).
  let refreshTimer = 0, lastStates = "";
  async function refreshDrawn() {
    try {
      const res = await fetch(location.href, { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const id of ["timing", "run-meta"]) {
        const fresh = doc.getElementById(id), old = document.getElementById(id);
        if (fresh && old) old.replaceWith(document.importNode(fresh, true));
      }
    } catch (_) { /* the next change tries again */ }
  }

  const dag = document.getElementById("dag");
  if (dag && dag.dataset.live) {
    live(dag.dataset.live, (data) => {
      const runState = document.getElementById("run-state");
      if (runState) { runState.textContent = data.state; setClassPrefix(runState, "r-", data.state); }
      const ended = ["succeeded", "failed", "cancelled"].includes(data.state);
      for (const f of document.querySelectorAll("#run-actions form")) {
        const show = f.dataset.when === "open" ? !ended :
          f.dataset.when === "ended" ? ended : (data.state === "failed" || data.state === "cancelled");
        f.classList.toggle("hidden", !show);
      }
      for (const st of data.steps) {
        for (const node of dag.querySelectorAll("a.node")) {
          if (node.dataset.step !== st.name) continue;
          setClassPrefix(node, "st-", st.state);
          const t = node.querySelector("title");
          if (t) t.textContent = st.name + ": " + st.state;
        }
        for (const row of document.querySelectorAll("tr[data-step]")) {
          if (row.dataset.step !== st.name) continue;
          const b = row.querySelector('[data-field="state"]');
          if (b) { b.textContent = st.state; setClassPrefix(b, "st-", st.state); }
          const w = row.querySelector('[data-field="waiting"]');
          if (w) w.textContent = st.waiting || st.reason || "";
          const d = row.querySelector('[data-field="duration"]');
          if (d) d.textContent = st.duration || "";
          const at = row.querySelector('[data-field="attempt"]');
          if (at) at.textContent = String(st.attempt);
          if (st.state !== "pending" || st.reason !== "awaiting_approval") {
            const f = row.querySelector("form.decide");
            if (f) f.remove();
          }
        }
      }
      pollLog();
      const states = data.state + ":" + data.steps.map(s => s.state).join(",");
      if (lastStates && states !== lastStates) {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(refreshDrawn, 300);
      }
      lastStates = states;
    });
  }
  if (logView) {
    pollLog();
    setInterval(pollLog, 2000);
  }
})();
